"""A BERT-style WordPiece tokenizer trained on the corpus, cached by what it was trained on.

Reports use a small clinical vocabulary; a tokenizer trained on them (plus the class
prompts, so evaluation text has no unknown words) needs no model hub. A local pretrained
tokenizer directory (`data.tokenizer`) is used as is.

A sweep builds the corpus tokenizer once, before any trial starts, into the experiment
directory (`experiment_tokenizer`); every worker loads that file, so all nodes share one
vocabulary (WordPiece training is not reproducible across processes), and its
`tokenizer_hash` goes into the results manifest and every checkpoint.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from medflip.data.cache import atomic_file, cache_dir, digest, locked

EXPERIMENT_FILE = "tokenizer.json"  # in the experiment directory

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ids 0..4 in this order
_RECIPE = "wordpiece-bert-lower-v1"  # bump when the recipe changes: invalidates caches


def train_wordpiece(texts: Sequence[str], vocab_size: int) -> Tokenizer:
    """BERT normaliser (lowercase), BERT pre-tokenizer, WordPiece, `[CLS] x [SEP]` template."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIALS), show_progress=False
    )
    tok.train_from_iterator(texts, trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return tok


def wrap(tokenizer_file: str, max_len: int) -> PreTrainedTokenizerFast:
    """A transformers fast tokenizer around a saved `tokenizers` JSON file."""
    return PreTrainedTokenizerFast(
        tokenizer_file=tokenizer_file,
        model_max_length=max_len,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def corpus_tokenizer(
    texts: Sequence[str], vocab_size: int, max_len: int
) -> PreTrainedTokenizerFast:
    """Train (or load from the cache) a WordPiece tokenizer on `texts`.

    Keyed by a hash of the recipe, the vocabulary size and every text, so a changed corpus
    never reuses a stale vocabulary; built under a file lock, written atomically.
    """
    key = digest([_RECIPE, str(vocab_size), *texts])
    path = os.path.join(cache_dir(), f"tokenizer-{key}.json")
    if not os.path.exists(path):
        with locked(path):
            if not os.path.exists(path):  # another worker may have built it while we waited
                tok = train_wordpiece(texts, vocab_size)
                with atomic_file(path) as tmp:
                    tok.save(tmp)
    return wrap(path, max_len)


def pretrained_tokenizer(path: str, max_len: int) -> PreTrainedTokenizerFast:
    """A local tokenizer directory (e.g. a BERT/MiniLM checkpoint); never touches a hub."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"data.tokenizer: {path!r} is not a local tokenizer directory")
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    tok.model_max_length = max_len
    return tok


def tokenizer_hash(tokenizer) -> str:
    """12 hex digits of sha256 over the tokenizer's full JSON (vocabulary, rules, specials).

    Take it from a freshly loaded tokenizer: encoding with padding/truncation writes that
    state into the same JSON."""
    return hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()[:12]


class TokenizerMismatch(RuntimeError):
    """A worker's tokenizer is not the experiment's."""


def load_experiment_tokenizer(path: str, expected_hash: str, max_len: int):
    """The experiment's tokenizer file; refuses one whose hash is not `expected_hash`."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"experiment tokenizer {path!r} does not exist")
    tok = wrap(path, max_len)
    found = tokenizer_hash(tok)
    if expected_hash and found != expected_hash:
        raise TokenizerMismatch(
            f"{path}: tokenizer hash {found}, the experiment's is {expected_hash}; "
            "refusing to train with another vocabulary"
        )
    return tok


def experiment_tokenizer(cfg, directory: str, build) -> tuple[str, str]:
    """Build the corpus tokenizer once into `directory` -> (path, hash).

    `build()` makes the tokenizer (medflip.data.dataset.build_tokenizer bound to the
    config): passed in because dataset imports this module.

    ("", "") when the config names a local pretrained tokenizer (data.tokenizer or a local
    model.text): that directory is the shared copy. An existing file (a resumed sweep) is
    kept as is, so a resume trains with the vocabulary it started with.
    """
    if cfg.data.tokenizer or os.path.isdir(cfg.model.text):
        return "", ""
    path = os.path.join(directory, EXPERIMENT_FILE)
    if not os.path.exists(path):
        os.makedirs(directory, exist_ok=True)
        with atomic_file(path) as tmp:
            build().backend_tokenizer.save(tmp)
    return path, tokenizer_hash(wrap(path, cfg.data.max_text_len))
