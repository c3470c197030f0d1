"""Kedro datasets that write to the MLflow model registry, so nodes stay free of MLflow.

- :class:`RegisteredModelDataset`: saving logs the packaged debiased model into the
  active run, registers a new version and points the challenger alias at it; a JSON
  record of that version is written to ``filepath`` (an unchanged model — same content digest
  as the latest version — is not registered again: that version is reused). Loading returns the registry's
  view: that version and the current champion, with their recorded numbers.
- :class:`PromotionDecisionDataset`: saving records the gate's decision as tags on the
  version and the run and moves the champion alias when promoted; loading returns the
  decision (JSON at ``filepath``).

With ``model_promotion.gate.dry_run`` (a ``dry_run`` key in what is saved) both only read the registry:
see :mod:`neurontune.tracking.dry_run`.
"""

from __future__ import annotations

from typing import Any

from kedro.io import AbstractDataset, DatasetError
from mlflow.tracking import MlflowClient

from neurontune.io.datasets import JsonDataset
from neurontune.tracking.dry_run import preview_registration, record_preview
from neurontune.tracking.registry import alias_version, apply_decision, register_debiased_model, version_record


class RegisteredModelDataset(AbstractDataset):
    def __init__(self, filepath: str, alias: str = "challenger", champion_alias: str = "champion",
                 artifact_name: str = "debiased_model", metadata: dict[str, Any] | None = None):
        self._record = JsonDataset(filepath)
        self._alias = alias
        self._champion_alias = champion_alias
        self._artifact_name = artifact_name
        self.metadata = metadata

    def save(self, data: dict) -> None:
        if data.get("dry_run"):
            self._record.save(preview_registration(data))
            return
        self._record.save(register_debiased_model(data, alias=self._alias, artifact_name=self._artifact_name))

    def load(self) -> dict:
        record = self._record.load()
        client = MlflowClient()
        name = record["registered_model_name"]
        champion = alias_version(client, name, self._champion_alias)
        return {
            "registered_model_name": name,
            "reused": bool(record.get("reused", False)),
            "dry_run": bool(record.get("dry_run", False)),
            "challenger": record["challenger"] if record.get("dry_run") else version_record(client, name, record["version"]),
            "champion": None if champion is None else version_record(client, name, champion),
        }

    def _exists(self) -> bool:
        return self._record.exists()

    def _describe(self) -> dict[str, Any]:
        return {"record": self._record._describe(), "alias": self._alias, "champion_alias": self._champion_alias}


class PromotionDecisionDataset(AbstractDataset):
    def __init__(self, filepath: str, champion_alias: str = "champion", metadata: dict[str, Any] | None = None):
        self._record = JsonDataset(filepath)
        self._champion_alias = champion_alias
        self.metadata = metadata

    def save(self, data: dict) -> None:
        missing = {"registered_model_name", "challenger_version", "champion_version", "promote", "status", "reason"} - set(data)
        if missing:
            raise DatasetError(f"promotion decision is missing {sorted(missing)}.")
        if data.get("dry_run"):
            record_preview(data)
        else:
            apply_decision(data, champion_alias=self._champion_alias)
        self._record.save(data)

    def load(self) -> dict:
        return self._record.load()

    def _exists(self) -> bool:
        return self._record.exists()

    def _describe(self) -> dict[str, Any]:
        return {"record": self._record._describe(), "champion_alias": self._champion_alias}
