"""The ``neurontune`` console script: small tools around the Kedro project."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from neurontune.tracking.cli import add_tracking_commands


def summarise(metrics_path: Path, split: str = "test") -> str:
    """The benchmark validity card, then a plain-text table of per-group accuracy, WGA and mean accuracy per method.

    Where ``split`` has no group labels, the table shows per-class accuracy, worst-class and worst pseudo-group
    accuracy instead, and says that WGA and the validity card are not measurable and why.
    """
    from neurontune.core.metrics import is_measured, validity_warning
    from neurontune.methods import HARM, METHOD_CHOICE, VALIDITY, method_entries, not_fitted_reason

    report = json.loads(metrics_path.read_text())
    metrics = method_entries(report)
    fitted = {method: splits[split] for method, splits in metrics.items() if not not_fitted_reason(splits.get(split))}
    lines = []
    card = report.get(VALIDITY, {}).get(split)
    if card and not is_measured(card["separates_methods"]):
        lines += [f"benchmark validity on {split}: {card['separates_methods']}", ""]
    elif card:
        lines += [f"benchmark validity on {split}: ERM mean accuracy {card['erm_mean_accuracy']:.3f}, ERM WGA "
                  f"{card['erm_worst_group_accuracy']:.3f}, oracle WGA {card['oracle_worst_group_accuracy']:.3f}, "
                  f"headroom {card['headroom']:+.3f}"]
        warning = validity_warning(card)
        lines += [f"WARNING: {warning}" if warning else "the benchmark can separate debiasing methods", ""]
    labelled = any(is_measured(row.get("worst_group_accuracy")) for row in fitted.values())
    kind = "group" if labelled else "class"
    cells = sorted({k for row in fitted.values() for k in row if k.startswith(f"accuracy_{kind}_")},
                   key=lambda name: int(name.rsplit("_", 1)[1]))
    header = f"{'method':<28}" + "".join(f"{kind[0] + c.rsplit('_', 1)[1]:>7}" for c in cells)
    if labelled:
        header += f"{'WGA':>7}{'mean':>7}{'w-mean':>8}{'w-class':>8}{'masked':>7}"
        lines += [f"{split} split (w-mean = group accuracies weighted by training proportions)", header]
    else:
        note = next((row["worst_group_accuracy"] for row in fitted.values() if "worst_group_accuracy" in row), "not recorded")
        header += f"{'mean':>7}{'w-class':>8}{'w-pseudo':>9}{'masked':>7}"
        lines += [f"{split} split: worst-group accuracy (WGA) {note}; c<k> = accuracy of class k, w-pseudo = worst "
                  "pseudo-group (class × ERM wrong) accuracy", header]
    for method, splits in metrics.items():
        row = splits[split]
        if not_fitted_reason(row):
            lines.append(f"{method:<28}not fitted: {not_fitted_reason(row)}")
            continue
        line = f"{method:<28}" + "".join(f"{row.get(c, float('nan')):>7.3f}" for c in cells)
        if labelled:
            line += f"{row['worst_group_accuracy']:>7.3f}{row['mean_accuracy']:>7.3f}"
            line += f"{_cell(row.get('mean_accuracy_train_weighted', float('nan'))):>8}{row['worst_class_accuracy']:>8.3f}{row['n_masked']:>7d}"
        else:
            line += f"{row['mean_accuracy']:>7.3f}{row['worst_class_accuracy']:>8.3f}"
            line += f"{row.get('worst_pseudo_group_accuracy', float('nan')):>9.3f}{row['n_masked']:>7d}"
        lines.append(line + harm_flag(report.get(HARM, {}).get(method)))
    unmeasured = sorted({value for row in fitted.values() for value in row.values() if isinstance(value, str)})
    lines += [f"n/m = {note}" for note in unmeasured if labelled]
    return "\n".join(lines + harm_notes(report.get(HARM, {})) + choice_notes(report.get(METHOD_CHOICE)))


def choice_notes(choice: dict | None) -> list[str]:
    """Which method ``packaging.method: auto`` chose, why, and every candidate's selection-half scores."""
    if not choice:
        return []
    lines = ["", f"auto (packaging.method: auto, no group labels) chose {choice['chosen']}: {choice['reason']}",
             f"rule: {choice['rule']}",
             f"{'candidate':<28}{'w-pseudo':>9}{'w-class':>8}{'mean':>7}  (selection half, held out)"]
    for row in choice["candidates"]:
        mark = "" if row["eligible"] else "  not eligible"
        lines.append(f"{row['method']:<28}{row['sel_worst_pseudo_group_accuracy']:>9.3f}"
                     f"{row['sel_worst_class_accuracy']:>8.3f}{row['sel_mean_accuracy']:>7.3f}{mark}")
    return lines + [f"not a candidate: {method} ({why})" for method, why in choice.get("not_candidates", {}).items()]


def _cell(value) -> str:
    """A number with three decimals, ``nan`` for a missing one, ``n/m`` for one that was not measurable."""
    return "n/m" if isinstance(value, str) else f"{value:.3f}"


def harm_flag(harm: dict | None) -> str:
    """Marks after a method's row: ``worse than ERM`` (labelled evaluation), ``guard: ERM head`` (label-free)."""
    if not harm:
        return ""
    marks = ["WORSE THAN ERM"] if harm.get("worse_than_erm") else []
    marks += ["guard: ERM head"] if harm.get("selection", {}).get("guard_fired") else []
    return "  " + "; ".join(marks) if marks else ""


def harm_notes(harm: dict) -> list[str]:
    """What the marks mean, and which methods carry them."""
    worse = [method for method, entry in harm.items() if entry.get("worse_than_erm")]
    guarded = [method for method, entry in harm.items() if entry.get("selection", {}).get("guard_fired")]
    if not harm:
        return []
    by = {entry.get("worse_than_erm_by", "worst_group_accuracy") for entry in harm.values() if "worse_than_erm" in entry}
    criterion = " / ".join(sorted(name.replace("_", "-", 1).replace("_", " ") for name in by)) or "worst-group accuracy"
    return ["", f"worse than ERM in {criterion} (evaluation.harm.split): {', '.join(worse) or 'none'}",
            f"do-no-harm guard (label-free: selection-half criterion vs ERM) kept ERM's head for: {', '.join(guarded) or 'none'}"]


def run_explain(arguments: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``neurontune explain``: rebuild a registered model's evidence galleries and masked-neuron table from its run."""
    import os

    import mlflow

    from neurontune.tracking.explain import explain_model, format_explanation
    from neurontune.tracking.lineage import default_tracking_uri

    project_dir = arguments.project_dir.resolve()
    uri = arguments.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(project_dir)
    mlflow.set_tracking_uri(uri)
    # the registry is the tracking store's own, whatever a registry URI set earlier in this process says
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    output = arguments.output or project_dir / "explain" / arguments.model_uri.removeprefix("models:/").replace("/", "_").replace("@", "_")
    try:
        explanation = explain_model(arguments.model_uri, output, arguments.run_id, client=client)
    except ValueError as error:
        parser.exit(2, f"neurontune explain: {error}\n")
    print(format_explanation(explanation))
    return 0


def run_ci_summary(arguments: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``neurontune ci-summary``: print (or write) the Markdown summary of the run in ``--env``."""
    import os

    from neurontune.ci_summary import format_ci_summary, gather_ci_inputs, model_version_page

    inputs = gather_ci_inputs(arguments.env, arguments.artifacts_url)
    decision = inputs["decision"] or {}
    page = model_version_page(arguments.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"),
                              decision.get("registered_model_name", ""), decision.get("challenger_version"))
    text = format_ci_summary(**inputs, split=arguments.split or decision.get("split", "test"), model_page=page)
    if arguments.output is None:
        print(text, end="")
    else:
        arguments.output.write_text(text)
        print(f"wrote {arguments.output}")
    return 0


def project_catalog(env: str | None = None):
    """The catalog of the project in the working directory for Kedro environment ``env`` (no session, no MLflow run)."""
    from neurontune.stage_status import environment_catalog

    return environment_catalog(Path.cwd(), env)


def catalog_filepath(name: str, env: str | None = None) -> Path:
    """Where the catalog entry ``name`` of environment ``env`` is stored."""
    return Path(project_catalog(env).get(name)._describe()["filepath"])


def export_embeddings(output: Path | None, env: str | None = None) -> tuple[Path, dict]:
    """Load the run's caches, metadata and ERM head through the project's catalog and write one ``.npz``
    (default: ``embeddings_export.npz`` beside the catalog's ``method_predictions``)."""
    from neurontune.data.export import embedding_export
    from neurontune.data.tables import SPLITS
    from neurontune.io.datasets import NpzDataset

    catalog = project_catalog(env)
    if output is None:
        output = Path(catalog.get("method_predictions")._describe()["filepath"]).with_name("embeddings_export.npz")
    caches = {split: catalog.load(f"embeddings_{split}") for split in SPLITS}
    arrays = embedding_export(caches, catalog.load("raw_metadata"), catalog.load("erm_head"))
    NpzDataset(str(output)).save(arrays)
    return output, arrays


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="neurontune", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    summary = commands.add_parser("summary", help="print the per-group accuracy table from metrics.json")
    summary.add_argument("metrics", nargs="?", default=None, type=Path,
                         help="a metrics.json (default: the catalog's `metrics` of --env)")
    summary.add_argument("--env", default=None, help="Kedro environment (benchmark) whose metrics to show")
    summary.add_argument("--split", default="test", choices=["train", "val", "test"])
    add_tracking_commands(commands)
    explain = commands.add_parser("explain", help="what a registered model suppresses: its evidence galleries, "
                                  "masked neurons and mask precision/recall, rebuilt from its run's artifacts")
    explain.add_argument("model_uri", help="models:/NAME@ALIAS or models:/NAME/VERSION")
    explain.add_argument("--output", type=Path, default=None,
                         help="folder for the galleries and the masked-neuron table (default: explain/NAME_VERSION)")
    explain.add_argument("--run-id", default=None,
                         help="read the evidence from this run (default: the run that registered the version)")
    explain.add_argument("--project-dir", type=Path, default=Path.cwd(), help="project root (default: here)")
    explain.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI, else the project's mlflow.db")
    export = commands.add_parser(
        "export-embeddings",
        help="write one .npz with x_/y_/g_{train,val,test} and the ERM head w0, b0 (run `kedro run` first)")
    export.add_argument("--output", default=None, type=Path,
                        help="default: embeddings_export.npz in the benchmark's 07_model_output folder")
    export.add_argument("--env", default=None, help="Kedro environment of the run to export (a benchmark)")
    ci = commands.add_parser("ci-summary", help="the run as Markdown for $GITHUB_STEP_SUMMARY, a merge request note or a "
                             "file: ERM vs the packaged method, the gate's decision, validity, masked neurons, lineage")
    ci.add_argument("--env", default=None, help="Kedro environment (benchmark) of the run")
    ci.add_argument("--split", default=None, choices=["train", "val", "test"], help="default: the gate's split, else test")
    ci.add_argument("--output", type=Path, default=None, help="write the Markdown here (default: print it)")
    ci.add_argument("--artifacts-url", default=None,
                    help="where the job's artifacts are browsable; links become URL/<path in the project>")
    ci.add_argument("--tracking-uri", default=None, help="for a link to the version's page (default: $MLFLOW_TRACKING_URI)")
    ci.set_defaults(handler=run_ci_summary)
    status = commands.add_parser("status", help="which stages' outputs are missing or older than their inputs or "
                                                "parameters (exit 1 when any stage is not up to date)")
    status.add_argument("--env", default=None, help="Kedro environment (benchmark) whose data to check")
    arguments = parser.parse_args(argv)
    try:
        return _dispatch(arguments, parser)
    except Exception as error:  # every failure gets a status (neurontune.exit_codes); a crash keeps its traceback
        from neurontune.exit_codes import FAILED, describe, exit_code_for

        code = exit_code_for(error)
        if code == FAILED:
            raise
        parser.exit(code, f"neurontune {arguments.command}: {error}\n{describe(code)}\n")


def _dispatch(arguments: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if hasattr(arguments, "handler"):
        return arguments.handler(arguments, parser)
    if arguments.command == "explain":
        return run_explain(arguments, parser)
    if arguments.command == "summary":
        metrics = arguments.metrics or catalog_filepath("metrics", arguments.env)
        if not metrics.exists():
            parser.error(f"{metrics} does not exist; run `kedro run{' --env ' + arguments.env if arguments.env else ''}` first.")
        print(summarise(metrics, arguments.split))
    elif arguments.command == "status":
        from neurontune.stage_status import all_up_to_date, format_status, project_status

        statuses = project_status(Path.cwd(), arguments.env)
        print(format_status(statuses, arguments.env))
        return 0 if all_up_to_date(statuses) else 1
    elif arguments.command == "export-embeddings":
        output, arrays = export_embeddings(arguments.output, arguments.env)
        shapes = ", ".join(f"{key} {value.shape}" for key, value in arrays.items() if key[0] in "xwb")
        print(f"wrote {output}: {shapes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
