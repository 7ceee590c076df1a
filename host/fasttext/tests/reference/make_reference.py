"""Trains the reference models with the official fastText and records its
predictions, for the Rust engine's parity test (../parity.rs).

    python3 -m venv venv && venv/bin/pip install -r requirements.txt
    venv/bin/pip install --no-build-isolation fasttext==0.9.2
    venv/bin/python make_reference.py          # rewrites models/, texts.json, expected*.json, training.json
    venv/bin/python make_reference.py --check  # predicts again; exit 1 if expected.json differs
    venv/bin/python make_reference.py --expectations  # new texts for the committed models

Everything here is deterministic: the corpus comes from a seeded generator and
fastText trains on one thread with its fixed seed.
"""

import json
import math
import os
import sys

import fasttext

import corpus

# load_model warns on every call that it returns a FastText object; it does.
fasttext.FastText.eprint = lambda *args, **kwargs: None

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "models")

# name -> train_supervised arguments. Small dims and buckets keep the files small.
COMMON = dict(thread=1, verbose=0, epoch=10, lr=0.5, dim=10, bucket=2000)
SPECS = {
    "softmax": dict(loss="softmax"),
    "softmax-bigrams": dict(loss="softmax", wordNgrams=2),
    "softmax-char": dict(loss="softmax", wordNgrams=2, minn=2, maxn=4, dim=16),
    "hs-bigrams-char": dict(loss="hs", wordNgrams=2, minn=3, maxn=5),
    "ova-bigrams": dict(loss="ova", wordNgrams=2),
    "ova-char": dict(loss="ova", minn=2, maxn=3),
    "ns-bigrams": dict(loss="ns", wordNgrams=2, neg=3),
}
# name -> (model it quantizes, quantize arguments)
QUANTIZED = {
    # qout (a quantized output matrix) needs at least 256 labels; these have six.
    "softmax-char-pruned": ("softmax-char", dict(cutoff=300, qnorm=True, dsub=2)),
    "hs-bigrams-char-plain": ("hs-bigrams-char", dict(dsub=4)),
}

# The Rust trainer is held to the official one's accuracy on these (../training.rs).
TRAINING = {
    "softmax-bigrams": dict(loss="softmax", wordNgrams=2),
    "hs-bigrams": dict(loss="hs", wordNgrams=2),
    "ova-bigrams": dict(loss="ova", wordNgrams=2),
    "softmax-char": dict(loss="softmax", minn=2, maxn=4),
}
TRAINING_COMMON = dict(thread=1, verbose=0, epoch=5, lr=0.5, dim=10, bucket=20000)

VARIANTS = {"all": (-1, 0.0), "top2-above-0.15": (2, 0.15), "top1": (1, 0.0)}


def edge_cases():
    long_text = " ".join(corpus.line(__import__("random").Random(7), "Phishing") for _ in range(1200))
    return [
        "",
        " ",
        "\t \r\v\f",
        "zzqx qqqqv xyzzy",                       # only unknown words
        "🚨🎣 phishing 🎣🚨",
        "📱 gestohlen im Zug, bitte sperren",
        "Пароль заблокирован, помогите",
        "病毒 手机 丢失了",
        "überweisung contraseña análisis",
        "my laptop was stolen\nat the airport\nplease wipe it",
        "line one\r\nline two",
        "__label__Phishing is a label-like word",
        "__label__Nope unknown label-like word",
        "a\0b c",
        "   leading and trailing spaces   ",
        "x" * 1000,
        "é" * 300,
        "PHISHING LINK CLICK HERE",
        # fastText's getLine ends the line at the word `</s>`: the rest is unread.
        "lost laptop </s> phishing netflix account verify",
        "</s>",
        "</s> stolen laptop taxi",
        "phishing link</s> not a separate word",
        long_text[: 100 * 1024],
    ]


def texts():
    import random

    rng = random.Random(3)
    labels = list(corpus.CATEGORIES)
    generated = [corpus.line(rng, rng.choice(labels), noise=0.35) for _ in range(500)]
    return edge_cases() + generated


def predict(model, text, k, threshold):
    # The official predict refuses newlines: its users replace them by spaces.
    labels, probs = model.predict(text.replace("\n", " "), k=k, threshold=threshold)
    return [label[len("__label__"):] for label in labels], [float(p) for p in probs]


def write_corpus():
    for name, seed, count in (("train.txt", 1, 4000), ("valid.txt", 2, 1000)):
        with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
            for label, text in corpus.labelled(seed, count):
                f.write(f"__label__{label} {text}\n")


def train():
    os.makedirs(MODELS, exist_ok=True)
    train_file = os.path.join(HERE, "train.txt")
    for name, spec in SPECS.items():
        model = fasttext.train_supervised(train_file, **{**COMMON, **spec})
        model.save_model(os.path.join(MODELS, name + ".bin"))
    for name, (base, spec) in QUANTIZED.items():
        model = fasttext.load_model(os.path.join(MODELS, base + ".bin"))
        model.quantize(input=train_file, retrain=False, **spec)
        model.save_model(os.path.join(MODELS, name + ".ftz"))


def training_reference():
    """Precision at one on valid.txt of the official trainer, per configuration."""
    out = {}
    for name, spec in TRAINING.items():
        params = {**TRAINING_COMMON, **spec}
        model = fasttext.train_supervised(os.path.join(HERE, "train.txt"), **params)
        _, precision, _ = model.test(os.path.join(HERE, "valid.txt"))
        out[name] = {"params": params, "precision": precision}
    return out


def many_labels(seed, lines_per_label):
    """A corpus of 300 labels, each with words of its own: enough labels for a
    quantized output matrix (fastText needs 256 rows to quantize one)."""
    import random

    rng = random.Random(seed)
    out = []
    for label in range(300):
        own = [f"w{label}x{i}" for i in range(3)]
        for _ in range(lines_per_label):
            words = [rng.choice(own) for _ in range(rng.randint(2, 6))]
            words += [rng.choice(corpus.FILLER) for _ in range(rng.randint(0, 4))]
            rng.shuffle(words)
            out.append((f"L{label}", " ".join(words)))
    return out


QOUT = "many-labels-qout.ftz"
QOUT_K = 5


def qout_model():
    """Trains and quantizes, output matrix included, the 300-label model."""
    path = os.path.join(HERE, "many-labels.txt")
    with open(path, "w", encoding="utf-8") as f:
        for label, text in many_labels(11, 12):
            f.write(f"__label__{label} {text}\n")
    model = fasttext.train_supervised(path, thread=1, verbose=0, epoch=10, lr=0.5, dim=8, bucket=1000, wordNgrams=2)
    model.quantize(input=path, retrain=False, qout=True, qnorm=True, dsub=2)
    model.save_model(os.path.join(MODELS, QOUT))
    os.remove(path)


def qout_expectations():
    model = fasttext.load_model(os.path.join(MODELS, QOUT))
    texts = [text for _, text in many_labels(12, 1)][::3] + ["", "hello team", "w5x1 w200x2"]
    return {"k": QOUT_K, "texts": texts, "predictions": [predict(model, t, QOUT_K, 0.0) for t in texts]}


def model_files():
    return sorted(f for f in os.listdir(MODELS) if f.endswith((".bin", ".ftz")))


def expectations(all_texts):
    out = {"fasttext": fasttext.__version__ if hasattr(fasttext, "__version__") else "0.9.2",
           "variants": {v: {"k": k, "threshold": t} for v, (k, t) in VARIANTS.items()},
           "models": {}}
    for file in model_files():
        if file == QOUT:
            continue
        model = fasttext.load_model(os.path.join(MODELS, file))
        out["models"][file] = {
            variant: [predict(model, text, k, t) for text in all_texts]
            for variant, (k, t) in VARIANTS.items()
        }
    return out


def same(a, b):
    if a.keys() != b.keys():
        return False
    for file in a["models"]:
        for variant in VARIANTS:
            for (la, pa), (lb, pb) in zip(a["models"][file][variant], b["models"][file][variant]):
                if la != lb or any(not math.isclose(x, y, abs_tol=1e-7) for x, y in zip(pa, pb)):
                    return False
    return True


def predict_file(path, texts_path):
    """Loads a model with the official fastText and prints its predictions of
    every reference text, as the Rust tests compare a Rust-trained model's."""
    model = fasttext.load_model(path)
    with open(texts_path, encoding="utf-8") as f:
        all_texts = json.load(f)
    print(json.dumps([predict(model, text, -1, 0.0) for text in all_texts]))


def same_qout(a, b):
    if a["texts"] != b["texts"]:
        return False
    for (la, pa), (lb, pb) in zip(a["predictions"], b["predictions"]):
        if la != lb or any(not math.isclose(x, y, abs_tol=1e-7) for x, y in zip(pa, pb)):
            return False
    return True


def write_expectations(expected_path):
    all_texts = texts()
    with open(os.path.join(HERE, "texts.json"), "w", encoding="utf-8") as f:
        json.dump(all_texts, f, ensure_ascii=False, indent=0)
    with open(expected_path, "w", encoding="utf-8") as f:
        json.dump(expectations(all_texts), f, ensure_ascii=False, separators=(",", ":"))


def main():
    if sys.argv[1:2] == ["--predict"]:
        predict_file(sys.argv[2], sys.argv[3])
        return
    expected_path = os.path.join(HERE, "expected.json")
    if "--check" in sys.argv:
        with open(os.path.join(HERE, "texts.json"), encoding="utf-8") as f:
            all_texts = json.load(f)
        with open(expected_path, encoding="utf-8") as f:
            committed = json.load(f)
        fresh = expectations(all_texts)
        if not same(committed, fresh):
            print("expected.json does not match the official fastText's predictions", file=sys.stderr)
            sys.exit(1)
        with open(os.path.join(HERE, "expected-qout.json"), encoding="utf-8") as f:
            if not same_qout(json.load(f), qout_expectations()):
                print("expected-qout.json does not match the official fastText", file=sys.stderr)
                sys.exit(1)
        with open(os.path.join(HERE, "training.json"), encoding="utf-8") as f:
            if json.load(f) != training_reference():
                print("training.json does not match the official trainer's precision", file=sys.stderr)
                sys.exit(1)
        count = sum(len(v) for m in fresh["models"].values() for v in m.values())
        print(
            f"official fastText agrees with expected.json ({count} predictions, {len(fresh['models'])} models), "
            f"expected-qout.json and training.json"
        )
        return
    if "--expectations" in sys.argv:
        # New texts for the committed models, without training them again.
        write_expectations(expected_path)
        return
    write_corpus()
    train()
    qout_model()
    with open(os.path.join(HERE, "expected-qout.json"), "w", encoding="utf-8") as f:
        json.dump(qout_expectations(), f, ensure_ascii=False, separators=(",", ":"))
    write_expectations(expected_path)
    with open(os.path.join(HERE, "training.json"), "w", encoding="utf-8") as f:
        json.dump(training_reference(), f, indent=1)
    for file in model_files():
        print(file, os.path.getsize(os.path.join(MODELS, file)), "bytes")


if __name__ == "__main__":
    main()
