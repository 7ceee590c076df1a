//! fastText's dictionary: words then labels, the open-addressing table fastText
//! looks words up in, and the hashing of words, character n-grams and word
//! n-grams into input-matrix rows (`dictionary.cc`).

use std::collections::HashMap;

use crate::Error;
use crate::read::Reader;

pub(crate) const EOS: &[u8] = b"</s>";
const BOW: u8 = b'<';
const EOW: u8 = b'>';
const LABEL_PREFIX: &[u8] = b"__label__";

/// fastText's FNV-1a variant: each byte is sign-extended (`int8_t`) before the
/// xor, so bytes ≥ 0x80 — every non-ASCII UTF-8 byte — flip the top 24 bits too.
pub fn hash(bytes: &[u8]) -> u32 {
    let mut h: u32 = 2_166_136_261;
    for &b in bytes {
        h ^= b as i8 as i32 as u32;
        h = h.wrapping_mul(16_777_619);
    }
    h
}

/// Whitespace as fastText's `readWord` splits on.
pub(crate) fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c | 0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryType {
    Word,
    Label,
}

#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) word: Vec<u8>,
    pub(crate) count: i64,
    pub(crate) kind: EntryType,
}

pub(crate) struct Settings {
    pub(crate) bucket: i32,
    pub(crate) minn: i32,
    pub(crate) maxn: i32,
    pub(crate) word_ngrams: i32,
}

pub(crate) struct Dictionary {
    pub(crate) entries: Vec<Entry>,
    pub(crate) nwords: i32,
    pub(crate) nlabels: i32,
    pub(crate) ntokens: i64,
    /// `-1`: not pruned. Otherwise how many n-gram rows the input matrix kept,
    /// and which bucket maps to which kept row.
    pub(crate) pruneidx_size: i64,
    pruneidx: HashMap<i32, i32>,
    /// fastText's own open-addressing table: slot → entry id or -1.
    word2int: Vec<i32>,
    /// Each word's input rows: itself, then its character n-grams.
    subwords: Vec<Vec<i32>>,
    settings: Settings,
}

impl Dictionary {
    /// Reads a dictionary; `index`: also build the lookup table and each
    /// word's n-grams, which predicting needs and listing the labels does not.
    pub(crate) fn load(
        r: &mut Reader<'_>,
        settings: Settings,
        index: bool,
    ) -> Result<Dictionary, Error> {
        let size = r.i32("dictionary size")?;
        let nwords = r.i32("dictionary word count")?;
        let nlabels = r.i32("dictionary label count")?;
        let ntokens = r.i64("dictionary token count")?;
        let pruneidx_size = r.i64("dictionary prune index size")?;
        let size = r.count(size.into(), i32::MAX.into(), "dictionary size")?;
        if nwords < 0 || nlabels < 0 || nwords as i64 + nlabels as i64 != size as i64 {
            return Err(r.invalid(
                "dictionary counts",
                format!("{nwords} words and {nlabels} labels in a dictionary of {size}"),
            ));
        }
        if pruneidx_size < -1 || pruneidx_size > i32::MAX.into() {
            return Err(r.invalid(
                "dictionary prune index size",
                format!("{pruneidx_size} is out of range"),
            ));
        }
        // Each entry is at least a NUL, an 8-byte count and a type byte.
        if size > r.remaining() / 10 {
            return Err(Error::Truncated {
                what: "dictionary entries",
                offset: r.offset(),
            });
        }
        let mut entries = Vec::with_capacity(size);
        for i in 0..size {
            let word = r.cstr("dictionary entry")?.to_vec();
            let count = r.i64("dictionary entry count")?;
            let kind = match r.u8("dictionary entry type")? {
                0 => EntryType::Word,
                1 => EntryType::Label,
                other => {
                    return Err(r.invalid(
                        "dictionary entry type",
                        format!("{other} is neither word (0) nor label (1)"),
                    ));
                }
            };
            let expected = if i < nwords as usize {
                EntryType::Word
            } else {
                EntryType::Label
            };
            if kind != expected {
                return Err(r.invalid(
                    "dictionary entry type",
                    format!("entry {i} is a {kind:?}; words come before labels"),
                ));
            }
            entries.push(Entry { word, count, kind });
        }
        let mut pruneidx = HashMap::new();
        for _ in 0..pruneidx_size.max(0) {
            let from = r.i32("prune index entry")?;
            let to = r.i32("prune index entry")?;
            if from < 0 || to < 0 || i64::from(to) >= pruneidx_size {
                return Err(r.invalid(
                    "prune index entry",
                    format!("{from} → {to} with {pruneidx_size} kept n-grams"),
                ));
            }
            pruneidx.insert(from, to);
        }
        let mut dict = Dictionary {
            entries,
            nwords,
            nlabels,
            ntokens,
            pruneidx_size,
            pruneidx,
            word2int: Vec::new(),
            subwords: Vec::new(),
            settings,
        };
        if index {
            dict.index();
        }
        Ok(dict)
    }

    /// fastText's `readFromFile` and `threshold`: every whitespace-separated
    /// token of `text`, each line ending in `</s>`, counted; words seen fewer
    /// than `min_count` times and labels fewer than `min_count_label` dropped;
    /// words first, then labels, each most frequent first.
    pub(crate) fn build(
        text: &str,
        min_count: u64,
        min_count_label: u64,
        settings: Settings,
    ) -> Dictionary {
        let mut counts: HashMap<&[u8], (i64, usize)> = HashMap::new();
        let mut ntokens = 0i64;
        for line in text.lines() {
            let tokens = line
                .as_bytes()
                .split(|&b| is_space(b))
                .filter(|t| !t.is_empty())
                .chain(std::iter::once(EOS));
            for token in tokens {
                ntokens += 1;
                let next = counts.len();
                counts.entry(token).or_insert((0, next)).0 += 1;
            }
        }
        let mut entries: Vec<(usize, Entry)> = counts
            .into_iter()
            .map(|(word, (count, first_seen))| {
                let kind = if word.starts_with(LABEL_PREFIX) {
                    EntryType::Label
                } else {
                    EntryType::Word
                };
                (
                    first_seen,
                    Entry {
                        word: word.to_vec(),
                        count,
                        kind,
                    },
                )
            })
            .filter(|(_, e)| match e.kind {
                EntryType::Word => e.count as u64 >= min_count,
                EntryType::Label => e.count as u64 >= min_count_label,
            })
            .collect();
        // Ties keep the order of first appearance, so a build is repeatable.
        entries.sort_by(|(a_seen, a), (b_seen, b)| {
            (a.kind == EntryType::Label)
                .cmp(&(b.kind == EntryType::Label))
                .then(b.count.cmp(&a.count))
                .then(a_seen.cmp(b_seen))
        });
        let entries: Vec<Entry> = entries.into_iter().map(|(_, e)| e).collect();
        let nwords = entries.iter().filter(|e| e.kind == EntryType::Word).count() as i32;
        let nlabels = entries.len() as i32 - nwords;
        let mut dict = Dictionary {
            entries,
            nwords,
            nlabels,
            ntokens,
            pruneidx_size: -1,
            pruneidx: HashMap::new(),
            word2int: Vec::new(),
            subwords: Vec::new(),
            settings,
        };
        dict.index();
        dict
    }

    /// The dictionary as fastText's `Dictionary::save` writes it.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.entries.len() as i32).to_le_bytes());
        out.extend_from_slice(&self.nwords.to_le_bytes());
        out.extend_from_slice(&self.nlabels.to_le_bytes());
        out.extend_from_slice(&self.ntokens.to_le_bytes());
        out.extend_from_slice(&self.pruneidx_size.to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.word);
            out.push(0);
            out.extend_from_slice(&e.count.to_le_bytes());
            out.push(match e.kind {
                EntryType::Word => 0,
                EntryType::Label => 1,
            });
        }
        let mut pruned: Vec<(i32, i32)> = self.pruneidx.iter().map(|(&k, &v)| (k, v)).collect();
        pruned.sort_unstable();
        for (from, to) in pruned {
            out.extend_from_slice(&from.to_le_bytes());
            out.extend_from_slice(&to.to_le_bytes());
        }
    }

    /// fastText's `word2int_` table and `initNgrams`.
    fn index(&mut self) {
        let slots = (self.entries.len() as f64 / 0.7).ceil() as usize;
        self.word2int = vec![-1; slots.max(1)];
        for i in 0..self.entries.len() {
            let slot = self.find(&self.entries[i].word, hash(&self.entries[i].word));
            self.word2int[slot] = i as i32;
        }
        let mut subwords = Vec::with_capacity(self.nwords as usize);
        let mut bounded = Vec::new();
        for i in 0..self.nwords as usize {
            let mut rows = vec![i as i32];
            let word = &self.entries[i].word;
            if word != EOS {
                bounded.clear();
                bounded.push(BOW);
                bounded.extend_from_slice(word);
                bounded.push(EOW);
                self.char_ngrams(&bounded, &mut rows);
            }
            subwords.push(rows);
        }
        self.subwords = subwords;
    }

    fn find(&self, word: &[u8], h: u32) -> usize {
        let slots = self.word2int.len();
        let mut slot = h as usize % slots;
        while let Some(&id) = self.word2int.get(slot) {
            if id == -1 || self.entries[id as usize].word == word {
                break;
            }
            slot = (slot + 1) % slots;
        }
        slot
    }

    fn id(&self, word: &[u8], h: u32) -> i32 {
        self.word2int[self.find(word, h)]
    }

    pub(crate) fn label(&self, id: i32) -> &[u8] {
        &self.entries[(self.nwords + id) as usize].word
    }

    /// The row of bucket `id` (`pushHash`): through the prune index when the
    /// dictionary was pruned; nothing when the n-gram was pruned away.
    fn push_hash(&self, rows: &mut Vec<i32>, id: i32) {
        if self.pruneidx_size == 0 || id < 0 {
            return;
        }
        let id = if self.pruneidx_size > 0 {
            match self.pruneidx.get(&id) {
                Some(&kept) => kept,
                None => return,
            }
        } else {
            id
        };
        rows.push(self.nwords + id);
    }

    /// `computeSubwords`: the character n-grams of `<word>`, whole UTF-8
    /// characters, `minn..=maxn` long, without the lone `<` and `>`.
    fn char_ngrams(&self, word: &[u8], rows: &mut Vec<i32>) {
        let Settings {
            minn, maxn, bucket, ..
        } = self.settings;
        if bucket <= 0 {
            return;
        }
        let continuation = |b: u8| b & 0xC0 == 0x80;
        let mut ngram = Vec::new();
        for i in 0..word.len() {
            if continuation(word[i]) {
                continue;
            }
            ngram.clear();
            let mut j = i;
            let mut n = 1;
            while j < word.len() && n <= maxn {
                ngram.push(word[j]);
                j += 1;
                while j < word.len() && continuation(word[j]) {
                    ngram.push(word[j]);
                    j += 1;
                }
                if n >= minn && !(n == 1 && (i == 0 || j == word.len())) {
                    let h = (hash(&ngram) % bucket as u32) as i32;
                    self.push_hash(rows, h);
                }
                n += 1;
            }
        }
    }

    /// `getLine` for a supervised model: the input rows of `text` followed by
    /// the end-of-sentence token, as fastText's `predict` sees a line. Every
    /// fastText whitespace byte separates words — newlines included, as if the
    /// caller had replaced them by spaces.
    pub(crate) fn line(&self, text: &[u8], rows: &mut Vec<i32>) {
        self.read_line(text, rows, None, false);
    }

    /// [`Dictionary::line`] with each known word that has character n-grams as
    /// one entry, `-(id + 1)`, standing for all its rows (the model keeps their
    /// sum); returns how many rows the entries stand for.
    pub(crate) fn line_compact(&self, text: &[u8], rows: &mut Vec<i32>) -> usize {
        self.read_line(text, rows, None, true).1
    }

    /// [`Dictionary::line`], also collecting the ids of the labels in the text
    /// (as training reads a line); returns how many tokens the line had.
    pub(crate) fn line_with_labels(
        &self,
        text: &[u8],
        rows: &mut Vec<i32>,
        labels: Option<&mut Vec<i32>>,
    ) -> usize {
        self.read_line(text, rows, labels, false).0
    }

    /// `getLine`: returns the tokens read and the input rows they stand for.
    fn read_line(
        &self,
        text: &[u8],
        rows: &mut Vec<i32>,
        mut labels: Option<&mut Vec<i32>>,
        compact: bool,
    ) -> (usize, usize) {
        rows.clear();
        let mut represented = 0;
        if let Some(labels) = labels.as_deref_mut() {
            labels.clear();
        }
        let mut ntokens = 0;
        let mut hashes: Vec<i32> = Vec::new();
        let mut bounded = Vec::new();
        let tokens = text
            .split(|&b| is_space(b))
            .filter(|t| !t.is_empty())
            .chain(std::iter::once(EOS));
        for token in tokens {
            ntokens += 1;
            let h = hash(token);
            let id = self.id(token, h);
            let kind = if id < 0 {
                if token.starts_with(LABEL_PREFIX) {
                    EntryType::Label
                } else {
                    EntryType::Word
                }
            } else {
                self.entries[id as usize].kind
            };
            if kind == EntryType::Label {
                if let Some(labels) = labels.as_deref_mut()
                    && id >= 0
                {
                    labels.push(id - self.nwords);
                }
                continue;
            }
            if id < 0 {
                if token != EOS {
                    bounded.clear();
                    bounded.push(BOW);
                    bounded.extend_from_slice(token);
                    bounded.push(EOW);
                    self.char_ngrams(&bounded, rows);
                }
            } else if self.settings.maxn <= 0 {
                rows.push(id);
            } else if compact {
                rows.push(-(id + 1));
                represented += self.subwords[id as usize].len() - 1;
            } else {
                rows.extend_from_slice(&self.subwords[id as usize]);
            }
            hashes.push(h as i32);
            // fastText's getLine ends the line at the word `</s>`, literal
            // or not: what follows it is never read.
            if token == EOS {
                break;
            }
        }
        self.word_ngrams(&hashes, rows);
        (ntokens, represented + rows.len())
    }

    /// The input rows of word `id`: itself and its character n-grams.
    pub(crate) fn subwords(&self, id: usize) -> &[i32] {
        &self.subwords[id]
    }

    /// `addWordNgrams`: each hash is sign-extended to 64 bits before mixing.
    fn word_ngrams(&self, hashes: &[i32], rows: &mut Vec<i32>) {
        if self.settings.bucket <= 0 || self.settings.word_ngrams <= 1 {
            return;
        }
        let n = self.settings.word_ngrams as usize;
        let bucket = self.settings.bucket as u64;
        for i in 0..hashes.len() {
            let mut h = hashes[i] as i64 as u64;
            for &next in hashes.iter().take(i + n).skip(i + 1) {
                h = h.wrapping_mul(116_049_371).wrapping_add(next as i64 as u64);
                self.push_hash(rows, (h % bucket) as i32);
            }
        }
    }

    pub(crate) fn label_counts(&self) -> Vec<i64> {
        self.entries[self.nwords as usize..]
            .iter()
            .map(|e| e.count)
            .collect()
    }
}
