"""Evidence galleries: what a NeuronTune variant's mask switched off, shown with class labels only.

For the masked neurons with the largest ``δ`` and, for contrast, the unmasked neurons the
retrained head leans on most: the validation samples that activate each most and least
(images: a PNG grid; text: the texts and the words over-represented in the top ones).
Nothing here reads the spurious attribute or group labels.
"""

from __future__ import annotations

import logging

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from neurontune.core import LinearHead  # noqa: E402
from neurontune.core.evidence import evidence_neurons, extreme_samples, overrepresented_words  # noqa: E402
from neurontune.core.roles import scores_of  # noqa: E402
from neurontune.methods import mask_role  # noqa: E402

logger = logging.getLogger(__name__)

#: How the kinds of neuron are named in tables and captions.
KIND_LABELS = {"masked": "masked", "unmasked": "kept"}


def collect_mask_evidence(
    embeddings_val: dict, class_labels: pd.DataFrame, raw_inputs: dict, neuron_scores: dict, head: dict,
    variant: dict, settings: dict,
) -> pd.DataFrame:
    """One row per shown neuron × shown validation sample: ``kind`` (masked / unmasked), ``neuron_rank``,
    ``neuron``, ``delta`` (max over classes of the ``δ`` the variant's mask was selected from), ``weight_spread``, ``end``
    (highest / lowest), ``sample_rank``, ``sample_id``, ``y``, ``activation``; for text also ``text``
    and the neuron's ``top_words``."""
    scores = scores_of(neuron_scores, mask_role(variant)).scores
    active = embeddings_val["embeddings"].std(axis=0) > 0
    chosen = evidence_neurons(scores, masked_neurons(head), head["weight"], settings["n_neurons"], active)
    texts = _validation_texts(raw_inputs, class_labels, embeddings_val["sample_id"])
    frames = []
    for kind, neurons in chosen.items():
        for rank, neuron in enumerate(neurons):
            activations = embeddings_val["embeddings"][:, neuron]
            frame = _neuron_frame(embeddings_val, activations, settings["n_samples"], settings["seed"]).assign(
                kind=kind, neuron_rank=rank, neuron=int(neuron), delta=_max_delta(scores[:, neuron]),
                weight_spread=float(np.ptp(head["weight"][:, neuron])))
            if texts is not None:
                frame = frame.assign(text=texts[frame["row"]],
                                     top_words=_top_words(texts, activations, settings["text"], settings["seed"]))
            frames.append(frame)
    logger.info("mask evidence: %d masked and %d kept neurons shown", len(chosen["masked"]), len(chosen["unmasked"]))
    return _ordered_columns(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame())


def draw_mask_gallery(mask_evidence: pd.DataFrame, raw_inputs: dict, class_labels: pd.DataFrame, method: str):
    """The gallery (a matplotlib figure: images as a grid, texts as panels) and its Markdown companion."""
    n_masked = int(mask_evidence.loc[mask_evidence["kind"] == "masked", "neuron"].nunique())
    title = (f"{method}: what the mask switched off — validation samples, captioned class · activation\n"
             f"red: masked neurons, largest δ first{'' if n_masked else ' (none: this head masks no neuron)'}; "
             "blue: kept neurons with the largest head weight")
    if "text" in mask_evidence.columns:
        return _text_panels(mask_evidence, title), _markdown(mask_evidence, method)
    rows = pd.Series(np.arange(len(class_labels)), index=class_labels["sample_id"].to_numpy())
    return _image_grid(mask_evidence, raw_inputs["inputs"], rows, title), _markdown(mask_evidence, method)


def masked_neurons(head: dict) -> np.ndarray:
    """Bool (M,): neurons the head suppresses in at least one class row."""
    return LinearHead.from_arrays(head["weight"], head["bias"], head.get("keep")).suppressed


# --------------------------------------------------------------------------- helpers


def _neuron_frame(embeddings_val: dict, activations: np.ndarray, n_samples: int, seed: int) -> pd.DataFrame:
    ends = extreme_samples(activations, n_samples, seed)
    frames = [pd.DataFrame({"end": end, "sample_rank": np.arange(len(rows)), "row": rows}) for end, rows in ends.items()]
    frame = pd.concat(frames, ignore_index=True)
    return frame.assign(sample_id=embeddings_val["sample_id"][frame["row"]], y=embeddings_val["y"][frame["row"]],
                        activation=activations[frame["row"]])


def _max_delta(column: np.ndarray) -> float:
    """δ of a neuron for the table: its largest over the scored classes (NaN when no class was scored)."""
    return float(np.nanmax(column)) if np.isfinite(column).any() else float("nan")


def _validation_texts(raw_inputs: dict, class_labels: pd.DataFrame, sample_ids: np.ndarray) -> np.ndarray | None:
    """The validation texts in cache order, or None for image inputs."""
    inputs = raw_inputs["inputs"]
    if inputs.dtype.kind not in "USO":
        return None
    rows = pd.Series(np.arange(len(class_labels)), index=class_labels["sample_id"].to_numpy())
    return inputs[rows.loc[sample_ids].to_numpy()].astype(str)


def _top_words(texts: np.ndarray, activations: np.ndarray, text: dict, seed: int) -> str:
    pool = np.zeros(len(texts), dtype=bool)
    pool[extreme_samples(activations, text["word_pool"], seed)["highest"]] = True
    words = overrepresented_words(texts, pool, text["n_words"], text["prior_strength"])
    return ", ".join(f"{word} ({z:.1f})" for word, z in words)


def _ordered_columns(table: pd.DataFrame) -> pd.DataFrame:
    first = ["kind", "neuron_rank", "neuron", "delta", "weight_spread", "end", "sample_rank", "sample_id", "y", "activation"]
    if table.empty:
        return pd.DataFrame(columns=first)
    return table[first + [column for column in ("text", "top_words") if column in table.columns]]


def _neuron_label(row) -> str:
    if row.kind == "masked":
        return f"masked n{row.neuron}\nδ {row.delta:+.2f}"
    return f"kept n{row.neuron}\nweight {row.weight_spread:.2f}"


def _neurons(table: pd.DataFrame) -> pd.DataFrame:
    """One row per shown neuron, masked first, in rank order."""
    order = {kind: rank for rank, kind in enumerate(KIND_LABELS)}
    neurons = table.drop_duplicates(["kind", "neuron"]).assign(_order=lambda t: t["kind"].map(order))
    return neurons.sort_values(["_order", "neuron_rank"], kind="stable")


def _image_grid(table: pd.DataFrame, images: np.ndarray, rows: pd.Series, title: str):
    neurons = _neurons(table)
    k = int(table["sample_rank"].max()) + 1 if len(table) else 1
    n_rows, n_columns = max(len(neurons), 1), 2 * k + 1  # a blank column between highest and lowest
    figure, axes = plt.subplots(n_rows, n_columns, figsize=(0.95 * n_columns + 1.2, 1.05 * n_rows + 0.9), squeeze=False)
    for axis in axes.flat:
        axis.set_axis_off()
    for r, neuron in enumerate(neurons.itertuples()):
        shown = table[(table["kind"] == neuron.kind) & (table["neuron"] == neuron.neuron)]
        for sample in shown.itertuples():
            axis = axes[r, sample.sample_rank + (0 if sample.end == "highest" else k + 1)]
            axis.imshow(_tile(images[rows.loc[sample.sample_id]]), cmap="gray", interpolation="nearest")
            axis.set_title(f"y{sample.y} · {sample.activation:.2f}", fontsize=7, pad=2)
        axes[r, 0].text(-0.15, 0.5, _neuron_label(neuron), transform=axes[r, 0].transAxes, ha="right", va="center",
                        fontsize=8, color="tab:red" if neuron.kind == "masked" else "tab:blue")
    if neurons.empty:
        axes[0, k].text(0.5, 0.5, "no neuron to show", ha="center", va="center", transform=axes[0, k].transAxes)
    figure.text(0.3, 1.0, f"← {k} highest activations", ha="center", va="bottom", fontsize=10)
    figure.text(0.78, 1.0, f"{k} lowest activations →", ha="center", va="bottom", fontsize=10)
    figure.suptitle(title, y=1.065, fontsize=11)
    figure.tight_layout(h_pad=0.6, w_pad=0.2)
    return figure


def _tile(image: np.ndarray) -> np.ndarray:
    """(C, H, W) or (H, W) uint8 → what ``imshow`` draws (RGB channels last; one channel as grey); a feature
    vector (M,) of precomputed embeddings is drawn as a one-row strip."""
    image = np.asarray(image)
    if image.ndim == 1:
        return image[None, :]
    if image.ndim == 3 and image.shape[0] in (1, 3, 4):
        image = np.moveaxis(image, 0, -1)
    return image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image


def _text_panels(table: pd.DataFrame, title: str):
    neurons = _neurons(table)
    figure, axes = plt.subplots(max(len(neurons), 1), 1, figsize=(12, 0.85 * max(len(neurons), 1) + 0.8), squeeze=False)
    for axis, neuron in zip(axes[:, 0], neurons.itertuples()):
        axis.set_axis_off()
        top = table[(table["kind"] == neuron.kind) & (table["neuron"] == neuron.neuron) & (table["end"] == "highest")]
        lines = [f"{_neuron_label(neuron).replace(chr(10), ' · ')} — over-represented: {neuron.top_words or '(none)'}"]
        lines += [f"  y{row.y} · {row.activation:.2f}  {_shorten(row.text, 110)}" for row in top.head(3).itertuples()]
        axis.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", fontsize=8, family="monospace",
                  color="tab:red" if neuron.kind == "masked" else "tab:blue", transform=axis.transAxes)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    return figure


def _shorten(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _markdown(table: pd.DataFrame, method: str) -> str:
    lines = [f"# What `{method}` masked", "",
             "Label-free evidence on the validation split: for the masked neurons with the largest δ (wrong − right "
             "median activation of a class, max over classes) and, for contrast, the kept neurons the retrained head "
             "leans on most (weight = spread of the head's weights over classes), the validation samples that "
             "activate each most and least, shown as `class · activation`. Group labels are not read.", ""]
    neurons = _neurons(table)
    if neurons.empty:
        return "\n".join(lines + ["No neuron to show.", ""])
    if "text" not in table.columns:
        lines += ["| neuron | kind | δ | weight | highest activations (sample: class · activation) | lowest |",
                  "|---|---|---|---|---|---|"]
    for neuron in neurons.itertuples():
        shown = table[(table["kind"] == neuron.kind) & (table["neuron"] == neuron.neuron)]
        cells = {end: ", ".join(f"{row.sample_id}: y{row.y} · {row.activation:.2f}" for row in part.itertuples())
                 for end, part in shown.groupby("end", sort=False)}
        if "text" not in table.columns:
            lines.append(f"| {neuron.neuron} | {KIND_LABELS[neuron.kind]} | {neuron.delta:+.3f} | {neuron.weight_spread:.3f} | "
                         f"{cells.get('highest', '')} | {cells.get('lowest', '')} |")
            continue
        lines += [f"## Neuron {neuron.neuron} ({KIND_LABELS[neuron.kind]}, δ {neuron.delta:+.3f}, weight "
                  f"{neuron.weight_spread:.3f})", "", f"Over-represented words (log-odds z): {neuron.top_words or '(none)'}", "",
                  "| sample | class | activation | text |", "|---|---|---|---|"]
        lines += [f"| {row.sample_id} | {row.y} | {row.activation:.3f} | {_escape(_shorten(row.text, 200))} |"
                  for row in shown[shown["end"] == "highest"].itertuples()]
        lines.append("")
    return "\n".join(lines + [""])
