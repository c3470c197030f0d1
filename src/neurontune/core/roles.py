"""Scoring roles: what a set of neuron scores was computed from, as a small typed value.

Identification scores the neurons once per *role* and regulation, the evidence galleries and
``neurontune explain`` read the scores back by role. A role is written ``<rows>.<errors>.<statistic>``
(``.relu`` appended when the embeddings pass a ReLU before scoring), e.g. the paper's
``val_ide.erm.median``:

- ``rows``: ``val_ide`` / ``val_sel`` (the identification / selection half of validation), ``val_all``
  (all of it) or ``train`` (the training split);
- ``errors``: whose errors define the error set, an entry of :data:`ERROR_CHOICES`
  (``auto`` = the early checkpoint for a fine-tuned backbone, cross-fitted heads for a frozen one);
- ``statistic``: one of :data:`neurontune.core.scoring.STATISTICS`.

The text form is the key of the stored score table (``<role>_scores``, ``<role>_n_wrong``,
``<role>_n_right``); :meth:`ScoringRole.parse` is the one place it is read back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from neurontune.core.errors import ERROR_SOURCES
from neurontune.core.scoring import STATISTICS, NeuronScores

#: The rows a role may be scored on.
ROWS = ("val_ide", "val_sel", "val_all", "train")
#: The error sets a role may use: every source of :mod:`neurontune.core.errors`, and ``auto``.
ERROR_CHOICES = ("erm", "auto", *ERROR_SOURCES[1:])
#: The keys of one role's entry in a score table.
SCORE_KEYS = ("scores", "n_wrong", "n_right")


@dataclass(frozen=True)
class ScoringRole:
    """What one set of neuron scores was computed from (see the module docstring)."""

    rows: str
    errors: str = "erm"
    statistic: str = "median"
    relu: bool = False

    def __post_init__(self) -> None:
        for name, value, choices in (("rows", self.rows, ROWS), ("errors", self.errors, ERROR_CHOICES),
                                     ("statistic", self.statistic, STATISTICS)):
            if value not in choices:
                raise ValueError(f"a scoring role's {name} must be one of {list(choices)}; got {value!r}.")
        if not isinstance(self.relu, bool):
            raise ValueError(f"a scoring role's relu must be true or false; got {self.relu!r}.")

    @classmethod
    def parse(cls, text: str | ScoringRole) -> ScoringRole:
        """The role written as ``rows.errors.statistic[.relu]`` (a role is returned unchanged)."""
        if isinstance(text, ScoringRole):
            return text
        parts = str(text).split(".")
        if len(parts) not in (3, 4) or (len(parts) == 4 and parts[3] != "relu"):
            raise ValueError(f"a scoring role reads <rows>.<errors>.<statistic>[.relu], e.g. 'val_ide.erm.median'; "
                             f"got {text!r}.")
        return cls(parts[0], parts[1], parts[2], relu=len(parts) == 4)

    def __str__(self) -> str:
        return f"{self.rows}.{self.errors}.{self.statistic}" + (".relu" if self.relu else "")

    @property
    def split(self) -> str:
        """The cached split its rows come from: ``train`` or ``val``."""
        return "train" if self.rows == "train" else "val"

    def with_rows(self, rows: str) -> ScoringRole:
        """The same errors and statistic on other rows."""
        return ScoringRole(rows, self.errors, self.statistic, self.relu)


#: The paper's roles: ERM's errors and the median difference on each part of validation.
PAPER_ROLES = {"ide": ScoringRole("val_ide"), "sel": ScoringRole("val_sel"), "all": ScoringRole("val_all")}


def score_table_entries(role: ScoringRole | str, scores: NeuronScores) -> dict:
    """``scores`` as the entries of a score table under ``role`` (``<role>_scores``, ``_n_wrong``, ``_n_right``)."""
    role = ScoringRole.parse(role)
    return {f"{role}_{key}": getattr(scores, key) for key in SCORE_KEYS}


def scores_of(table: Mapping, role: ScoringRole | str) -> NeuronScores:
    """The :class:`NeuronScores` stored under ``role`` in a score table (``ide``, ``sel``, ``all``: the paper's)."""
    role = PAPER_ROLES[role] if isinstance(role, str) and role in PAPER_ROLES else ScoringRole.parse(role)
    missing = [f"{role}_{key}" for key in SCORE_KEYS if f"{role}_{key}" not in table]
    if missing:
        stored = sorted(key.removesuffix("_scores") for key in table if key.endswith("_scores"))
        raise KeyError(f"the score table has no role {str(role)!r} (missing {missing}); it holds {stored}. "
                       "Rerun neuron_identification after changing a variant's levers.")
    return NeuronScores(*(table[f"{role}_{key}"] for key in SCORE_KEYS))
