#!/usr/bin/env python3
"""Make the tokenizer fixtures of tests/tool/test_tokenizer.cpp.

The C++ tokenizer of the gptq tool (tools/gptq/tokenizer/tokenizer.cpp) must give the
same ids as Hugging Face `tokenizers` does for
`tokenizer.encode(text, add_special_tokens=False)`. This script is the
reference side: it trains six small BPE tokenizers, one per pipeline style
the tool supports, on English text, encodes a fixed set of test texts with
the real library, and writes

    <style>.json     the tokenizer.json files (small vocabularies, < 100 KB)
    expected.json    the texts, and for every tokenizer the reference ids of
                     each text, the reference decode of those ids
                     (skip_special_tokens=False) and whether decode gives
                     every text back ("round_trips")

so that the C++ test needs no Python at run time.

Styles (each mimics the named model family's tokenizer.json):
    smollm2     Sequence[Digits(individual), ByteLevel(no prefix space)], as
                SmolLM2 / StarCoder; <|endoftext|>, <|im_start|>, <|im_end|>
    gpt2        ByteLevel(add_prefix_space=True); merges in the legacy "a b"
                string form; added tokens with lstrip/rstrip and single_word
    llama3      Split(Llama-3 regex) + ByteLevel(use_regex=False),
                ignore_merges=True
    qwen2       NFC normalizer, Split(Qwen2 regex) + ByteLevel
    spm         SentencePiece-style (Llama-2, Mistral): normalizer
                Prepend("▁") + Replace(" ", "▁"), no pre-tokenizer, BPE with
                byte_fallback and <unk>, decoder Replace/ByteFallback/Fuse/Strip;
                one normalized added token
    metaspace   Metaspace(prepend_scheme="first") + Digits(contiguous), BPE
                with <unk> (no byte fallback), Metaspace decoder

Rerun (from anywhere; needs the Debian package gnu-standards for the training
text, /usr/share/doc/gnu-standards/standards.text.gz):

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install tokenizers==0.23.3
    /tmp/venv/bin/python tests/tool/data/tokenizer/make_fixtures.py

The committed files were made with tokenizers 0.23.3 (Python 3.11). Texts
that the NFC normalizer would change are left out for the NFC tokenizer (the
C++ side treats NFC as the identity; see tokenizer.h), listed in "skipped".
"""
import gzip
import json
import os
import random
import sys
import unicodedata

import tokenizers
from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models,
                        normalizers, pre_tokenizers, trainers)

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = "/usr/share/doc/gnu-standards/standards.text.gz"

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|"
                r"\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|"
               r"\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

CHAT_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def corpus_text():
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        return f.read()


def train(tok, text, vocab_size, **trainer_args):
    lines = text.splitlines(keepends=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  **trainer_args)
    tok.train_from_iterator(lines, trainer=trainer)
    return tok


def byte_level_tok(pre_tok, normalizer=None):
    tok = Tokenizer(models.BPE())
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tok
    tok.decoder = decoders.ByteLevel()
    return tok


def make_smollm2(text):
    tok = byte_level_tok(pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]))
    train(tok, text, 1200, special_tokens=CHAT_SPECIALS,
          initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    return json.loads(tok.to_str())


def make_gpt2(text):
    tok = byte_level_tok(pre_tokenizers.ByteLevel(add_prefix_space=True))
    train(tok, text, 1200, special_tokens=["<|endoftext|>"],
          initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.add_special_tokens([AddedToken("[MASK]", lstrip=True, rstrip=True)])
    tok.add_tokens([AddedToken("foobar", single_word=True)])
    d = json.loads(tok.to_str())
    # The legacy merges form ("a b" strings) still found in many checkpoints.
    d["model"]["merges"] = [" ".join(m) for m in d["model"]["merges"]]
    return d


def make_split(text, regex, normalizer=None, ignore_merges=False):
    tok = byte_level_tok(pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]),
        normalizer)
    train(tok, text, 1200, special_tokens=CHAT_SPECIALS,
          initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    d = json.loads(tok.to_str())
    d["model"]["ignore_merges"] = ignore_merges
    return d


def make_spm(text):
    # Train on ▁-words, as SentencePiece does, then put the result into the
    # Llama-2 layout: <unk> <s> </s>, the 256 byte tokens, the learned pieces.
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always")
    train(tok, text, 1000, limit_alphabet=70)
    learned = json.loads(tok.to_str())["model"]
    head = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    vocab = {t: i for i, t in enumerate(head)}
    for t, _ in sorted(learned["vocab"].items(), key=lambda kv: kv[1]):
        vocab.setdefault(t, len(vocab))

    def special(i, content, special=True, normalized=False):
        return {"id": i, "content": content, "single_word": False,
                "lstrip": False, "rstrip": False, "normalized": normalized,
                "special": special}
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [special(0, "<unk>"), special(1, "<s>"),
                         special(2, "</s>"),
                         special(len(vocab), "magic word",
                                 special=False, normalized=True)],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
        "pre_tokenizer": None,
        "post_processor": None,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                  "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True,
                  "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": learned["merges"]},
    }


def make_metaspace(text):
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(prepend_scheme="first"),
        pre_tokenizers.Digits(individual_digits=False)])
    tok.decoder = decoders.Metaspace(prepend_scheme="first")
    train(tok, text, 800, special_tokens=["<unk>"], limit_alphabet=60)
    tok.add_special_tokens([AddedToken("<sep>", lstrip=True)])
    return json.loads(tok.to_str())


def fixed_texts():
    return [
        "",
        "Hello world",
        "Hello, world! How are you today?",
        " leading space",
        "trailing space ",
        "  two leading and two trailing  ",
        "a  b   c    d",
        "line one\nline two\n\nline four\n",
        "windows\r\nline\r\nends",
        "tabs\tbetween\t\twords\t",
        "\n\n\n",
        "   ",
        "I'm sure you're right, it's what they'd've said; we'll see.",
        "DON'T SHOUT, I'LL HEAR YOU, IT'S LOUD. Isn'T it?",
        "quotes 'single' and \"double\" and `back`",
        "'s 't 're 've 'm 'll 'd ''s ' s",
        "Numbers: 0 1 12 123 1234 12345 123456789 3.14159 -42 1e10",
        "Dates 2024-01-31, times 12:34:56, phone +1 (555) 010-9999",
        "x1y22z333w4444",
        "café naïve résumé façade Straße Ångström",
        "Größenwahn über Äpfel, œuvre, ÆØÅ",
        "Привет, мир! Как дела?",
        "Γειά σου Κόσμε",
        "مرحبا بالعالم",
        "日本語のテキストです。東京タワー",
        "中文文本，包含标点符号。",
        "한국어 텍스트",
        "emoji 👍 🎉🎉 👩‍👩‍👧 👍🏽 end",
        "math ∑ x² ≤ ∞ → π ≈ 3.14",
        "fullwidth １２３ and roman Ⅻ and ½ ¾",
        "nbsp\u00a0here, em\u2003space, ideographic\u3000space",
        "nel\u0085line sep\u2028para sep\u2029end",
        "zero\u200bwidth and soft\u00adhyphen",
        "long s 'ſ and kelvin 'K and 'ſt",
        "combining e\u0301 and a\u0308",
        "<|endoftext|>",
        "<|endoftext|><|endoftext|>",
        "Hello<|endoftext|>world",
        "Hello <|endoftext|> world",
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>",
        "partial <|im_start tokens <|im_end|| and <|endoftext",
        "mask [MASK] here and  [MASK]  there[MASK]x",
        "foobar and xfoobar and foobarx and (foobar)",
        "foobar½ foobar² foobarⅫ Ⓐfoobar foobar_x foobar\u200d é\u0301foobar",
        "<s>Hello</s> <unk> <s> spaced </s>",
        "the magic word, magic  word, amagic word",
        "<sep>start and middle   <sep>  end<sep>",
        "code: def f(x):\n    return x ** 2  # square\n",
        "    indented\n\tmixed \t tabs\n",
        "punct!!! ??? ... --- *** ### @@@ $$$ %%% ^^^ &&& ((( ))) ___ +++ === {{{",
        "url https://example.com/path?q=1&r=two#frag and mail a.b@c.org",
        "a'b a''b a'''b 'a' '' '",
        "\u00a0\u00a0leading nbsp and trailing nbsp\u00a0",
        " \n \n  \n",
        "x \r\n\r\n y",
        "CamelCaseWords and snake_case_words and kebab-case-words",
    ]


def random_texts(corpus, n):
    # Random mixtures of the character kinds the pre-tokenizers treat
    # differently, to reach the corners of the split regexes.
    rng = random.Random(20240611)
    pool = (list("abcXYZ") + list("0123456789") + [" "] * 6 +
            ["\n", "\n", "\r", "\t", "\u00a0", "\u3000"] +
            list("'''\".,;!?-_()[]{}") + ["é", "ß", "ж", "日", "本", "👍", "🏽",
                                          "²", "½", "\u0301", "ſ", "’"] +
            ["s", "t", "re", "ve", "m", "ll", "d", "S", "T", "LL"] +
            CHAT_SPECIALS + ["[MASK]", "<s>", "foobar", "magic word", "<sep>"])
    texts = []
    for _ in range(n):
        k = rng.randint(1, 60)
        texts.append("".join(rng.choice(pool) for _ in range(k)))
    words = corpus.split("\n\n")
    for _ in range(n // 2):
        i = rng.randrange(len(words) - 3)
        texts.append("\n\n".join(words[i:i + 3])[:1500])
    return texts


def compact_dump(out):
    """JSON with one text, id list or decode per line: small and diffable."""
    def j(x):
        return json.dumps(x, ensure_ascii=False, separators=(",", ":"))
    lines = ["{"]
    for key in ("generator", "tokenizers_version"):
        lines.append(f" {j(key)}: {j(out[key])},")
    lines.append(' "texts": [')
    lines.append(",\n".join("  " + j(t) for t in out["texts"]))
    lines.append(" ],")
    lines.append(' "tokenizers": [')
    entries = []
    for e in out["tokenizers"]:
        head = ", ".join(f"{j(k)}: {j(e[k])}"
                         for k in ("name", "file", "byte_level", "round_trips",
                                   "skipped"))
        ids = ",\n".join("    " + j(x) for x in e["ids"])
        dec = ",\n".join("    " + j(x) for x in e["decoded"])
        entries.append(f"  {{{head},\n   \"ids\": [\n{ids}\n   ],\n"
                       f"   \"decoded\": [\n{dec}\n   ]}}")
    lines.append(",\n".join(entries))
    lines.append(" ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main():
    corpus = corpus_text()
    styles = [
        ("smollm2", make_smollm2(corpus)),
        ("gpt2", make_gpt2(corpus)),
        ("llama3", make_split(corpus, LLAMA3_REGEX, ignore_merges=True)),
        ("qwen2", make_split(corpus, QWEN2_REGEX, normalizer=normalizers.NFC())),
        ("spm", make_spm(corpus)),
        ("metaspace", make_metaspace(corpus)),
    ]
    texts = fixed_texts() + random_texts(corpus, 40)
    out = {"generator": "tests/tool/data/tokenizer/make_fixtures.py",
           "tokenizers_version": tokenizers.__version__,
           "texts": texts, "tokenizers": []}
    for name, d in styles:
        s = json.dumps(d, ensure_ascii=False, separators=(",", ":"))
        path = os.path.join(HERE, name + ".json")
        with open(path, "w", encoding="utf-8") as f:
            f.write(s)
        tok = Tokenizer.from_file(path)  # exactly what the C++ side reads
        is_nfc = (d.get("normalizer") or {}).get("type") == "NFC"
        entry = {"name": name, "file": name + ".json",
                 "byte_level": (d.get("decoder") or {}).get("type") == "ByteLevel",
                 "skipped": [], "ids": [], "decoded": []}
        for i, t in enumerate(texts):
            if is_nfc and unicodedata.normalize("NFC", t) != t:
                entry["skipped"].append(i)
                entry["ids"].append(None)
                entry["decoded"].append(None)
                continue
            ids = tok.encode(t, add_special_tokens=False).ids
            entry["ids"].append(ids)
            entry["decoded"].append(tok.decode(ids, skip_special_tokens=False))
        # decode(encode(x)) == x for every text: byte-level without a
        # prefix space. The C++ test checks this property on its own.
        entry["round_trips"] = all(x is None or x == t
                                   for x, t in zip(entry["decoded"], texts))
        out["tokenizers"].append(entry)
        print(f"{name}: {len(s)} bytes, vocab {tok.get_vocab_size()}",
              file=sys.stderr)
    with open(os.path.join(HERE, "expected.json"), "w", encoding="utf-8") as f:
        f.write(compact_dump(out))


if __name__ == "__main__":
    main()
