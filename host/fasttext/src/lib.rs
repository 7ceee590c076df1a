//! fastText in pure Rust: reads the official supervised model files — `.bin`
//! (dense) and `.ftz` (product-quantized, possibly with a pruned dictionary) —
//! and predicts exactly as fastText's `predict` does, for every loss.
//!
//! ```no_run
//! let model = aerie_fasttext::Model::load("tickets.ftz".as_ref())?;
//! for p in model.predict("my laptop was stolen at the airport", 2, 0.0) {
//!     println!("{} {:.3}", p.label, p.prob);
//! }
//! # Ok::<(), aerie_fasttext::Error>(())
//! ```
//!
//! Parity with the official implementation is the contract, quirks included:
//! the text ends with the end-of-sentence token `</s>` (fastText's `predict`
//! appends a newline), so even an empty text gets labels, and a literal `</s>`
//! word ends the text there, as fastText's `getLine` does; hashing runs over
//! sign-extended bytes; `ova`/`ns` use fastText's 512-entry sigmoid table while
//! `hs` uses the exact sigmoid; probabilities are `exp(log(p + 1e-5))`, so they
//! can exceed 1.0. A newline inside the text separates words like a space: the
//! official tool refuses newlines in `predict`, and this gives what its users
//! get when they replace them by spaces.
//!
//! Everything read from a file is bounds-checked: a wrong, truncated or
//! inconsistent file is an [`Error`] that names what is wrong, never a panic.
//!
//! [`train`] is fastText's supervised training (see its module for what
//! differs), and [`Model::save`] writes a `.bin` the official tool loads.
//!
//! The tests hold all of this to the official package: `tests/parity.rs`
//! (reference models and their official predictions, made by
//! `tests/reference/make_reference.py`), `tests/training.rs` (accuracy against
//! the official trainer, and the official tool loading our `.bin`) and
//! `tests/corrupt.rs` (damaged files).

mod dictionary;
mod heap;
mod matrix;
mod read;
mod train;

use std::path::Path;

use dictionary::{Dictionary, Settings};
use matrix::Matrix;
use read::Reader;

pub use dictionary::hash;
pub use train::{Progress, TrainArgs, TrainError, train};

const MAGIC: i32 = 793_712_314;
const VERSION: i32 = 12;
const LABEL_PREFIX: &str = "__label__";

/// What is wrong with a model file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {path}: {cause}")]
    Io { path: String, cause: std::io::Error },
    #[error("not a fastText model (the file does not start with fastText's magic number)")]
    Magic,
    #[error("fastText file format version {0} is not supported (11 and 12 are)")]
    Version(i32),
    #[error("the file ends inside the {what} (at byte {offset})")]
    Truncated { what: &'static str, offset: usize },
    #[error("invalid {what} at byte {offset}: {why}")]
    Invalid {
        what: &'static str,
        why: String,
        offset: usize,
    },
    #[error("not a supervised model (it was trained with `{0}`); only classifiers predict labels")]
    NotSupervised(&'static str),
}

/// The loss a model was trained with; it decides how outputs are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Hierarchical softmax over a Huffman tree of the labels.
    Hs,
    /// Negative sampling: a sigmoid per label at prediction time.
    Ns,
    Softmax,
    /// One-vs-all: a sigmoid per label.
    Ova,
}

/// The training arguments stored in a model file.
#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    pub dim: i32,
    pub ws: i32,
    pub epoch: i32,
    pub min_count: i32,
    pub neg: i32,
    pub word_ngrams: i32,
    pub loss: Loss,
    pub bucket: i32,
    pub minn: i32,
    pub maxn: i32,
    pub lr_update_rate: i32,
    pub t: f64,
}

/// One predicted label.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The label without fastText's `__label__` prefix.
    pub label: String,
    /// As fastText reports it: `exp(log(p + 1e-5))`.
    pub prob: f32,
}

/// A loaded supervised model. Predicting takes `&self`: one model serves any
/// number of threads.
pub struct Model {
    args: Args,
    dict: Dictionary,
    input: Matrix,
    output: Matrix,
    quantized: bool,
    /// Hierarchical softmax only: the Huffman tree over the labels.
    tree: Vec<Node>,
    sigmoid: Vec<f32>,
    /// With character n-grams and a dense input matrix: per known word, the
    /// sum of its rows, so a known word costs one row addition at prediction
    /// instead of one per n-gram.
    word_sums: Option<Vec<f32>>,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    left: i32,
    right: i32,
}

const SIGMOID_TABLE_SIZE: usize = 512;
const MAX_SIGMOID: f32 = 8.0;

impl Model {
    /// Reads a `.bin` or `.ftz` file.
    pub fn load(path: &Path) -> Result<Model, Error> {
        let bytes = std::fs::read(path).map_err(|cause| Error::Io {
            path: path.display().to_string(),
            cause,
        })?;
        Model::from_bytes(&bytes)
    }

    /// Parses a model file's contents.
    pub fn from_bytes(bytes: &[u8]) -> Result<Model, Error> {
        let mut r = Reader::new(bytes);
        let (args, dict) = read_head(&mut r, true)?;
        let quantized = r.bool("input quantization flag")?;
        let input = if quantized {
            Matrix::load_quantized(&mut r, "input matrix")?
        } else {
            Matrix::load_dense(&mut r, "input matrix")?
        };
        if !quantized && dict.pruneidx_size >= 0 {
            return Err(r.invalid(
                "dictionary",
                "a pruned dictionary needs a quantized input matrix".to_owned(),
            ));
        }
        let qout = r.bool("output quantization flag")?;
        let output = if quantized && qout {
            Matrix::load_quantized(&mut r, "output matrix")?
        } else {
            Matrix::load_dense(&mut r, "output matrix")?
        };
        if !r.is_empty() {
            return Err(r.invalid("end of file", "bytes follow the output matrix".to_owned()));
        }

        // Every row a text can reach must exist.
        let dim = args.dim as usize;
        let ngram_rows = if dict.pruneidx_size >= 0 {
            dict.pruneidx_size
        } else {
            i64::from(args.bucket.max(0))
        };
        let needed_rows = i64::from(dict.nwords) + ngram_rows;
        if input.cols() != dim || (input.rows() as i64) < needed_rows {
            return Err(r.invalid(
                "input matrix",
                format!(
                    "{}×{} where the dictionary and arguments need {needed_rows}×{dim}",
                    input.rows(),
                    input.cols()
                ),
            ));
        }
        if output.cols() != dim || output.rows() != dict.nlabels as usize {
            return Err(r.invalid(
                "output matrix",
                format!(
                    "{}×{} where {} labels of dimension {dim} need {}×{dim}",
                    output.rows(),
                    output.cols(),
                    dict.nlabels,
                    dict.nlabels
                ),
            ));
        }

        Ok(Model::assemble(args, dict, input, output, quantized))
    }

    fn assemble(
        args: Args,
        dict: Dictionary,
        input: Matrix,
        output: Matrix,
        quantized: bool,
    ) -> Model {
        let word_sums = word_sums(&args, &dict, &input);
        let tree = if args.loss == Loss::Hs {
            huffman(&dict.label_counts())
        } else {
            Vec::new()
        };
        Model {
            args,
            dict,
            input,
            output,
            quantized,
            tree,
            sigmoid: sigmoid_table(),
            word_sums,
        }
    }

    /// The model as a fastText `.bin` file (format version 12), which the
    /// official tool loads. Quantized models are not written.
    pub fn to_bytes(&self) -> Option<Vec<u8>> {
        let (Matrix::Dense { .. }, Matrix::Dense { .. }) = (&self.input, &self.output) else {
            return None;
        };
        let mut out = Vec::new();
        for v in [MAGIC, VERSION] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        let a = &self.args;
        let loss = match a.loss {
            Loss::Hs => 1,
            Loss::Ns => 2,
            Loss::Softmax => 3,
            Loss::Ova => 4,
        };
        for v in [
            a.dim,
            a.ws,
            a.epoch,
            a.min_count,
            a.neg,
            a.word_ngrams,
            loss,
            3,
            a.bucket,
            a.minn,
            a.maxn,
            a.lr_update_rate,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&a.t.to_le_bytes());
        self.dict.write(&mut out);
        out.push(0); // input not quantized
        self.input.write_dense(&mut out);
        out.push(0); // output not quantized
        self.output.write_dense(&mut out);
        Some(out)
    }

    /// Writes [`Model::to_bytes`] to `path`.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let bytes = self
            .to_bytes()
            .ok_or_else(|| std::io::Error::other("a quantized model cannot be saved as .bin"))?;
        std::fs::write(path, bytes)
    }

    pub fn args(&self) -> &Args {
        &self.args
    }

    /// Whether the input matrix is product-quantized (an `.ftz`).
    pub fn is_quantized(&self) -> bool {
        self.quantized
    }

    /// The labels, without the `__label__` prefix, most frequent first.
    pub fn labels(&self) -> impl Iterator<Item = String> + '_ {
        (0..self.dict.nlabels).map(|i| label_text(self.dict.label(i)))
    }

    /// How many words the dictionary holds.
    pub fn words(&self) -> usize {
        self.dict.nwords as usize
    }

    /// The `k` most probable labels of `text` (all of them when `k` is 0) with
    /// a probability of at least `threshold`, best first: fastText's
    /// `predict(text, k, threshold)`.
    pub fn predict(&self, text: &str, k: usize, threshold: f32) -> Vec<Prediction> {
        let mut rows = Vec::new();
        let mut hidden = vec![0.0f32; self.args.dim as usize];
        let sums = self.word_sums.as_deref();
        let count = match sums {
            Some(_) => self.dict.line_compact(text.as_bytes(), &mut rows),
            None => {
                self.dict.line(text.as_bytes(), &mut rows);
                rows.len()
            }
        };
        if count == 0 {
            return Vec::new();
        }
        self.input.average_rows(&rows, sums, count, &mut hidden);
        let k = if k == 0 {
            self.dict.nlabels as usize
        } else {
            k
        };
        let mut best = Vec::with_capacity(k + 1);
        if self.args.loss == Loss::Hs {
            let root = self.tree.len() as i32 - 1;
            self.dfs(k, threshold, root, 0.0, &mut best, &hidden);
        } else {
            let output = self.output_layer(&hidden);
            find_k_best(k, threshold, &output, &mut best);
        }
        heap::sort(&mut best);
        best.into_iter()
            .map(|(score, label)| Prediction {
                label: label_text(self.dict.label(label)),
                prob: score.exp(),
            })
            .collect()
    }

    /// Softmax, or fastText's table sigmoid per label (`ova`, `ns`).
    fn output_layer(&self, hidden: &[f32]) -> Vec<f32> {
        let mut output: Vec<f32> = (0..self.output.rows())
            .map(|i| self.output.dot_row(hidden, i))
            .collect();
        match self.args.loss {
            Loss::Softmax => {
                let max = output.iter().copied().fold(output[0], f32::max);
                let mut z = 0.0f32;
                for o in &mut output {
                    // fastText calls C's `exp`: the double one.
                    *o = f64::from(*o - max).exp() as f32;
                    z += *o;
                }
                for o in &mut output {
                    *o /= z;
                }
            }
            Loss::Ova | Loss::Ns | Loss::Hs => {
                for o in &mut output {
                    *o = self.table_sigmoid(*o);
                }
            }
        }
        output
    }

    fn table_sigmoid(&self, x: f32) -> f32 {
        if x < -MAX_SIGMOID {
            0.0
        } else if x > MAX_SIGMOID {
            1.0
        } else {
            let i = ((x + MAX_SIGMOID) * SIGMOID_TABLE_SIZE as f32 / MAX_SIGMOID / 2.0) as usize;
            self.sigmoid[i]
        }
    }

    /// Hierarchical softmax: a depth-first walk of the Huffman tree that stops
    /// at branches that cannot beat the k-th best or the threshold.
    fn dfs(
        &self,
        k: usize,
        threshold: f32,
        node: i32,
        score: f32,
        best: &mut Vec<heap::Scored>,
        hidden: &[f32],
    ) {
        if score < std_log(threshold) {
            return;
        }
        if best.len() == k && score < best[0].0 {
            return;
        }
        let Node { left, right } = self.tree[node as usize];
        if left == -1 && right == -1 {
            heap::push(best, (score, node));
            if best.len() > k {
                heap::pop(best);
            }
            return;
        }
        let osz = self.dict.nlabels;
        let f = self.output.dot_row(hidden, (node - osz) as usize);
        // fastText: `1. / (1 + std::exp(-f))`, the float exp, the division in double.
        let f = (1.0f64 / f64::from(1.0 + (-f).exp())) as f32;
        self.dfs(
            k,
            threshold,
            left,
            score + std_log_f64(1.0 - f64::from(f)),
            best,
            hidden,
        );
        self.dfs(k, threshold, right, score + std_log(f), best, hidden);
    }
}

/// Each known word's rows summed in fastText's order (the word, then its
/// n-grams). Averaging these sums instead of the rows one by one rounds
/// differently in the last bits only — as fastText's own SIMD and FMA builds
/// differ from its scalar one; the parity tests hold it to the official output.
fn word_sums(args: &Args, dict: &Dictionary, input: &Matrix) -> Option<Vec<f32>> {
    let Matrix::Dense { cols, data, .. } = input else {
        return None;
    };
    if args.maxn <= 0 {
        return None;
    }
    let cols = *cols;
    let mut sums = vec![0.0f32; dict.nwords as usize * cols];
    for (word, sum) in sums.chunks_exact_mut(cols).enumerate() {
        for &row in dict.subwords(word) {
            let row = &data[row as usize * cols..(row as usize + 1) * cols];
            for (s, w) in sum.iter_mut().zip(row) {
                *s += w;
            }
        }
    }
    Some(sums)
}

/// fastText's `std_log`: `log(x + 1e-5)`, the sum and the log in double.
fn std_log(x: f32) -> f32 {
    (f64::from(x) + 1e-5).ln() as f32
}

/// `std_log(1.0 - f)`: fastText passes the double `1.0 - f` to a float parameter.
fn std_log_f64(x: f64) -> f32 {
    std_log(x as f32)
}

fn find_k_best(k: usize, threshold: f32, output: &[f32], best: &mut Vec<heap::Scored>) {
    for (i, &p) in output.iter().enumerate() {
        if p < threshold {
            continue;
        }
        let score = std_log(p);
        if best.len() == k && score < best[0].0 {
            continue;
        }
        heap::push(best, (score, i as i32));
        if best.len() > k {
            heap::pop(best);
        }
    }
}

fn sigmoid_table() -> Vec<f32> {
    (0..=SIGMOID_TABLE_SIZE)
        .map(|i| {
            let x = (i as f32 * 2.0 * MAX_SIGMOID) / SIGMOID_TABLE_SIZE as f32 - MAX_SIGMOID;
            (1.0 / (1.0 + f64::from((-x).exp()))) as f32
        })
        .collect()
}

/// `buildTree`: fastText's Huffman tree over the label counts (most frequent
/// label first), leaves `0..n`, internal nodes after, the root last.
///
/// A file's counts are not trusted to be sorted or small: where fastText
/// would read a node not yet built (fuzzing found counts that reach its
/// sentinel), a leaf is taken instead, and sums saturate.
fn huffman(counts: &[i64]) -> Vec<Node> {
    let osz = counts.len();
    if osz == 0 {
        return Vec::new();
    }
    let mut count: Vec<i64> = vec![1_000_000_000_000_000; 2 * osz - 1];
    count[..osz].copy_from_slice(counts);
    let mut tree = vec![
        Node {
            left: -1,
            right: -1
        };
        2 * osz - 1
    ];
    let mut leaf = osz as i64 - 1;
    let mut node = osz;
    for i in osz..2 * osz - 1 {
        let mut mini = [0usize; 2];
        for m in &mut mini {
            // Two items are always left to take, so with no built node
            // left (`node == i`) a leaf is.
            if leaf >= 0 && (node >= i || count[leaf as usize] < count[node]) {
                *m = leaf as usize;
                leaf -= 1;
            } else {
                *m = node;
                node += 1;
            }
        }
        tree[i] = Node {
            left: mini[0] as i32,
            right: mini[1] as i32,
        };
        count[i] = count[mini[0]].saturating_add(count[mini[1]]);
    }
    tree
}

fn label_text(word: &[u8]) -> String {
    let text = String::from_utf8_lossy(word);
    text.strip_prefix(LABEL_PREFIX).unwrap_or(&text).to_owned()
}

/// The labels of the model file at `path`, without the `__label__` prefix,
/// most frequent first. Only the header and the dictionary are read — they
/// come before the matrices — so listing the labels of a large model does not
/// load it.
pub fn labels(path: &Path) -> Result<Vec<String>, Error> {
    use std::io::Read as _;
    let io = |cause| Error::Io {
        path: path.display().to_string(),
        cause,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    let mut want = 1 << 20;
    loop {
        let missing = (want - bytes.len()) as u64;
        let read = file
            .by_ref()
            .take(missing)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        let at_end = (read as u64) < missing;
        match read_head(&mut Reader::new(&bytes), false) {
            Err(Error::Truncated { .. }) if !at_end => want *= 2,
            Err(e) => return Err(e),
            Ok((_, dict)) => {
                return Ok((0..dict.nlabels)
                    .map(|i| label_text(dict.label(i)))
                    .collect());
            }
        }
    }
}

/// The header, the training arguments and the dictionary (indexed for
/// prediction when `index`).
fn read_head(r: &mut Reader<'_>, index: bool) -> Result<(Args, Dictionary), Error> {
    let magic = r.i32("header").map_err(|_| Error::Magic)?;
    if magic != MAGIC {
        return Err(Error::Magic);
    }
    let version = r.i32("header")?;
    if !(11..=VERSION).contains(&version) {
        return Err(Error::Version(version));
    }
    let mut args = read_args(r)?;
    if version == 11 {
        // fastText: old supervised models do not use character n-grams.
        args.maxn = 0;
    }
    let settings = Settings {
        bucket: args.bucket,
        minn: args.minn,
        maxn: args.maxn,
        word_ngrams: args.word_ngrams,
    };
    let dict = Dictionary::load(r, settings, index)?;
    if dict.nlabels == 0 {
        return Err(r.invalid("dictionary", "the model has no labels".to_owned()));
    }
    Ok((args, dict))
}

fn read_args(r: &mut Reader<'_>) -> Result<Args, Error> {
    let what = "model arguments";
    let dim = r.i32(what)?;
    let ws = r.i32(what)?;
    let epoch = r.i32(what)?;
    let min_count = r.i32(what)?;
    let neg = r.i32(what)?;
    let word_ngrams = r.i32(what)?;
    let loss = match r.i32(what)? {
        1 => Loss::Hs,
        2 => Loss::Ns,
        3 => Loss::Softmax,
        4 => Loss::Ova,
        other => return Err(r.invalid("loss", format!("{other} is not a fastText loss (1-4)"))),
    };
    match r.i32(what)? {
        3 => {}
        1 => return Err(Error::NotSupervised("cbow")),
        2 => return Err(Error::NotSupervised("skipgram")),
        other => {
            return Err(r.invalid(
                "model kind",
                format!("{other} is not a fastText model kind (1-3)"),
            ));
        }
    }
    let bucket = r.i32(what)?;
    let minn = r.i32(what)?;
    let maxn = r.i32(what)?;
    let lr_update_rate = r.i32(what)?;
    let t = r.f64(what)?;
    if !(1..=1 << 16).contains(&dim) || bucket < 0 || minn < 0 || maxn < 0 || word_ngrams < 0 {
        return Err(r.invalid(
            what,
            format!(
                "dim {dim}, bucket {bucket}, minn {minn}, maxn {maxn}, wordNgrams {word_ngrams}"
            ),
        ));
    }
    Ok(Args {
        dim,
        ws,
        epoch,
        min_count,
        neg,
        word_ngrams,
        loss,
        bucket,
        minn,
        maxn,
        lr_update_rate,
        t,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huffman_tree_is_built_from_any_counts() {
        // Sorted, as fastText writes them; unsorted, negative, at its
        // sentinel and past it, as a damaged or hostile file may have them.
        let cases: [&[i64]; 5] = [
            &[50, 20, 20, 5, 1],
            &[1, 5, 3],
            &[-3, 7, 0],
            &[1_000_000_000_000_000, i64::MAX, 2],
            &[9],
        ];
        for counts in cases {
            let tree = huffman(counts);
            assert_eq!(tree.len(), 2 * counts.len() - 1, "{counts:?}");
            // Every internal node's children come before it.
            for (i, node) in tree.iter().enumerate().skip(counts.len()) {
                assert!(
                    (node.left as usize) < i && (node.right as usize) < i,
                    "{counts:?}"
                );
            }
        }
        assert!(huffman(&[]).is_empty());
    }
}
