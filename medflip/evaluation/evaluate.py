"""Evaluation: zero-shot (prompt ensembles), binary zero-shot, retrieval Precision@K, linear probe.

Pure functions over embeddings (tested against brute force) plus `evaluate(model, ...)`,
which encodes the evaluation sets unmasked, in eval mode, batched, without gradients.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from medflip.data.eval_sets import val_test_split
from medflip.device.precision import autocast  # the one autocast rule, as in training
from medflip.evaluation import items

RETRIEVAL_KS = (1, 2, 5, 10)


def class_embeddings(text_emb: torch.Tensor, prompts_per_class: int) -> torch.Tensor:
    """[C*P, D] prompt embeddings (class-major) -> [C, D]: normalised mean per class."""
    per_class = text_emb.view(-1, prompts_per_class, text_emb.shape[-1])  # [C, P, D]
    return F.normalize(per_class.mean(dim=1), dim=-1)


def class_scores(
    image_emb: torch.Tensor, prompt_emb: torch.Tensor, prompts_per_class: int, ensemble: str
) -> torch.Tensor:
    """[N, D] normalised images, [C*P, D] normalised prompts (class-major) -> [N, C] scores.

    `ensemble` (eval.prompt_ensemble): logits = MedCLIP's protocol, the mean over a class's
    prompts of cos(image, prompt) (its PromptClassifier averages the prompts' logits);
    embeddings = CLIP's, cos(image, the class's renormalised mean prompt embedding). They
    rank classes differently when a class's prompts spread unevenly.
    """
    if ensemble == "embeddings":
        return image_emb @ class_embeddings(prompt_emb, prompts_per_class).T
    per_class = prompt_emb.view(-1, prompts_per_class, prompt_emb.shape[-1])  # [C, P, D]
    return torch.einsum("nd,cpd->nc", image_emb, per_class) / prompts_per_class


def accuracy(pred: torch.Tensor, target: torch.Tensor) -> float:
    return (pred == target).float().mean().item()


def macro_f1(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> float:
    """Mean over classes of F1; a class with no support and no predictions counts as 0."""
    scores = []
    for c in range(num_classes):
        tp = ((pred == c) & (target == c)).sum().item()
        fp = ((pred == c) & (target != c)).sum().item()
        fn = ((pred != c) & (target == c)).sum().item()
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(scores) / num_classes


def zero_shot(image_emb: torch.Tensor, class_emb: torch.Tensor) -> torch.Tensor:
    """Predicted class per image: the nearest class embedding by cosine. [N, D], [C, D] -> [N]."""
    return (image_emb @ class_emb.T).argmax(dim=1)


def precision_at_k(
    query_emb: torch.Tensor,  # [Q, D]
    gallery_emb: torch.Tensor,  # [G, D]
    query_classes: torch.Tensor,  # [Q]
    gallery_classes: torch.Tensor,  # [G]
    ks=RETRIEVAL_KS,
) -> dict[int, float]:
    """Mean over queries of the share of the top-k gallery items whose class matches (Table 2)."""
    sims = query_emb @ gallery_emb.T  # [Q, G]
    k_max = min(max(ks), gallery_emb.shape[0])
    top = sims.topk(k_max, dim=1).indices  # [Q, k_max]
    hits = (gallery_classes[top] == query_classes[:, None]).float()  # [Q, k_max]
    return {k: hits[:, : min(k, k_max)].mean().item() for k in ks}


def linear_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    num_classes: int,
    weight_decay: float = 1e-3,
    iters: int = 100,
) -> float:
    """Multinomial logistic regression (L-BFGS, L2) on standardised frozen features -> accuracy."""
    train_x, test_x = train_x.double(), test_x.double()
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    w = torch.zeros(train_x.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(train_x @ w + b, train_y) + weight_decay * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        return accuracy((test_x @ w + b).argmax(1), test_y)


@torch.no_grad()
def encode_images(model, images: torch.Tensor, batch_size: int, device, precision) -> torch.Tensor:
    out = []
    for start in range(0, images.shape[0], batch_size):
        batch = images[start : start + batch_size].to(device, non_blocking=True)
        with autocast(device, precision):
            out.append(model.encode_image(batch).float())
    return F.normalize(torch.cat(out), dim=-1)


@torch.no_grad()
def encode_texts(model, tokenizer, texts, max_len, batch_size, device, precision) -> torch.Tensor:
    out = []
    for start in range(0, len(texts), batch_size):
        tok = tokenizer(
            list(texts[start : start + batch_size]),
            padding="max_length",
            truncation=True,
            max_length=max_len,
            return_tensors="pt",
        )
        with autocast(device, precision):
            emb = model.encode_text(tok["input_ids"].to(device), tok["attention_mask"].to(device))
        out.append(emb.float())
    return F.normalize(torch.cat(out), dim=-1)


def binary_auroc(score: torch.Tensor, target: torch.Tensor) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties 1/2
    (the Mann-Whitney U statistic from mid-ranks). NaN without both classes."""
    pos, neg = int((target == 1).sum()), int((target == 0).sum())
    if pos == 0 or neg == 0:
        return math.nan
    order = score.double().argsort()
    ranks = torch.empty_like(order, dtype=torch.float64)
    ranks[order] = torch.arange(1, len(score) + 1, dtype=torch.float64)
    for v in score[order].unique_consecutive():  # mid-ranks for ties
        tied = score == v
        ranks[tied] = ranks[tied].mean()
    u = ranks[target == 1].sum().item() - pos * (pos + 1) / 2
    return u / (pos * neg)


def balanced_accuracy(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> float:
    """Mean over the classes present of per-class recall: a constant predictor scores
    1 / num_classes whatever the class balance."""
    recalls = [
        (pred[target == c] == c).float().mean().item()
        for c in range(num_classes)
        if (target == c).any()
    ]
    return sum(recalls) / len(recalls)


def _retrieval_metrics(img, img_cls, txt, txt_cls) -> dict[str, float]:
    metrics = {}
    directions = {"i2t": (img, img_cls, txt, txt_cls), "t2i": (txt, txt_cls, img, img_cls)}
    for name, (q, qc, g, gc) in directions.items():
        for k, p in precision_at_k(q, g, qc, gc).items():
            metrics[f"retrieval_{name}_p{k}"] = p
    return metrics


def fiveclass_metrics(scores, targets) -> dict:
    """5-class zero-shot on one split from its class scores [N, C]: accuracy, macro-F1 and
    which items were right."""
    pred = scores.argmax(dim=1)
    return {
        "zeroshot_acc": accuracy(pred, targets),
        "zeroshot_f1": macro_f1(pred, targets, scores.shape[1]),
        "correct": pred == targets,  # [N] bool, in set order
    }


def binary_metrics(sims, targets) -> dict[str, float]:
    """Binary zero-shot on one split from its class scores [N, 2]: accuracy, balanced
    accuracy, AUROC, class counts. The score for AUROC is score(Consolidation) -
    score(No Finding)."""
    pred = sims.argmax(dim=1)
    return {
        "zeroshot_binary_acc": accuracy(pred, targets),
        "zeroshot_binary_bacc": balanced_accuracy(pred, targets, 2),
        "zeroshot_binary_auroc": binary_auroc(sims[:, 1] - sims[:, 0], targets),
        "zeroshot_binary_n_pos": int((targets == 1).sum()),
        "zeroshot_binary_n_neg": int((targets == 0).sum()),
    }


def _prefix(idx: torch.Tensor, n: int) -> torch.Tensor:
    """The first n of a split's (class-interleaved) indices; n = 0: all of them."""
    return idx[:n] if n > 0 else idx


def _zero_shot_splits(five_scores, bin_scores, sets, cfg, full: bool) -> dict:
    """5-class (and, at a full evaluation, binary) zero-shot on the validation prefix
    (`val_` names) and on the test half -- all of it when `full`, else its first
    `eval.curve_items` items -- with the test items' packed correctness. Scores [N, C]
    per set item (class_scores)."""
    (f_val, f_test), (b_val, b_test) = (
        val_test_split(sets.fiveclass_targets),
        val_test_split(sets.binary_targets),
    )
    f_val, b_val = _prefix(f_val, cfg.eval.val_items), _prefix(b_val, cfg.eval.val_items)
    f_test = f_test if full else _prefix(f_test, cfg.eval.curve_items)
    metrics: dict = {}
    for prefix, fi, bi in (("val_", f_val, b_val), ("", f_test, b_test)):
        split = fiveclass_metrics(five_scores[fi], sets.fiveclass_targets[fi])
        correct = split.pop("correct")
        if full:
            split |= binary_metrics(bin_scores[bi], sets.binary_targets[bi])
        if prefix:  # counts are the same kind of fact on both halves: reported once
            split = {k: v for k, v in split.items() if not k.endswith(("_n_pos", "_n_neg"))}
        metrics |= {prefix + k: v for k, v in split.items()}
    metrics["zeroshot_n"] = len(f_test)
    packed = items.pack(correct.numpy())
    if packed is not None:  # too many items for one cell: the analysis resamples seeds only
        metrics["zeroshot_items"] = packed
    return metrics


@torch.no_grad()
def evaluate(model, tokenizer, sets, cfg, device, prompts, probe: bool = True, full=True) -> dict:
    """Every evaluation metric of DESIGN.md for `model` on `sets` (a benchmark.EvalSets).

    `prompts` = (five_class_prompts [C][P], binary_prompts [2][P]) strings, class-major.
    The 5-class and binary sets are split (benchmark.val_test_split) into a validation
    half, reported as `val_<name>` (what searchers and selection read; its first
    `eval.val_items`), and a held-out test half, reported under the plain names (what
    tables and frontiers report), with `zeroshot_items`, the test items' correctness
    packed (medflip.evaluation.items) for the analysis' item bootstrap. Retrieval uses the test
    half's images; the probe has its own train and test sets. `full=False` (a curve point
    under `eval.curve_items`) scores only 5-class zero-shot on a prefix of each half.
    """
    was_training = model.training
    model.eval()

    def enc_img(x: torch.Tensor) -> torch.Tensor:
        return encode_images(model, x, cfg.eval.batch_size, device, cfg.optim.precision).cpu()

    enc_txt = lambda t: encode_texts(  # noqa: E731
        model, tokenizer, t, cfg.data.max_text_len, cfg.eval.batch_size, device, cfg.optim.precision
    ).cpu()
    five, binary = prompts

    def scores(img: torch.Tensor, groups: list[list[str]]) -> torch.Tensor:  # [N, C]
        prompt_emb = enc_txt([p for ps in groups for p in ps])  # [C*P, D], class-major
        return class_scores(img, prompt_emb, len(groups[0]), cfg.eval.prompt_ensemble)

    five_img = _encode_used(enc_img, sets.fiveclass_images, sets.fiveclass_targets, cfg, full)
    bin_img = _encode_used(enc_img, sets.binary_images, sets.binary_targets, cfg) if full else None
    bin_scores = scores(bin_img, binary) if full else None
    metrics = _zero_shot_splits(scores(five_img, five), bin_scores, sets, cfg, full)
    if full:
        metrics |= _retrieval_and_probe(enc_img, enc_txt, five_img, sets, len(five), probe)
    model.train(was_training)
    return metrics


def _encode_used(enc_img, images, targets, cfg, full: bool = True) -> torch.Tensor:
    """[N, D] embeddings of a split set's images; rows no split uses at this evaluation stay
    zero (a curve point encodes only its prefixes: its cost is what it scores)."""
    if full and cfg.eval.val_items == 0:
        return enc_img(images)
    val, test = val_test_split(targets)
    val, test = (
        _prefix(val, cfg.eval.val_items),
        test if full else _prefix(test, cfg.eval.curve_items),
    )
    used = torch.cat([val, test])
    emb = enc_img(images[used])  # [U, D]
    out = torch.zeros(len(targets), emb.shape[1])
    out[used] = emb
    return out


def _retrieval_and_probe(enc_img, enc_txt, five_img, sets, num_classes, probe) -> dict:
    """Retrieval Precision@K (test half of the 5x200 images, unless the sets bring their own
    pool) and the linear probe (NaN when off): full evaluations only."""
    if sets.retrieval_images is sets.fiveclass_images:
        test = val_test_split(sets.fiveclass_targets)[1]
        retrieval_img, retrieval_cls = five_img[test], sets.retrieval_image_classes[test]
    else:
        retrieval_img, retrieval_cls = enc_img(sets.retrieval_images), sets.retrieval_image_classes
    metrics = _retrieval_metrics(
        retrieval_img,
        retrieval_cls,
        enc_txt(sets.retrieval_sentences),
        sets.retrieval_sentence_classes,
    )
    metrics["probe_acc"] = (
        linear_probe(
            enc_img(sets.probe_train_images),
            sets.probe_train_targets,
            enc_img(sets.probe_test_images),
            sets.probe_test_targets,
            num_classes=num_classes,
        )
        if probe
        else math.nan
    )
    return metrics
