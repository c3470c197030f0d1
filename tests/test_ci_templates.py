"""The CI/CD templates (templates/ci/) are valid against the schemas check-jsonschema vendors, and zizmor (offline)
finds nothing of high severity in the GitHub workflow. Each check is also shown failing on a broken copy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

TEMPLATES = PROJECT_ROOT / "templates" / "ci"
BIN = Path(sys.executable).parent
SCHEMAS = {"github-workflow.yml": "vendor.github-workflows", "gitlab-ci.yml": "vendor.gitlab-ci"}


def check_schema(path: Path, schema: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
                          capture_output=True, text=True, timeout=120)


def zizmor_findings(path: Path) -> list[dict]:
    result = subprocess.run([str(BIN / "zizmor"), "--offline", "--format", "json", str(path)],
                            capture_output=True, text=True, timeout=120)
    # exit 0: no findings; 10-14: findings of the highest severity found (zizmor's documented codes)
    assert result.returncode in (0, 10, 11, 12, 13, 14), result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_template_validates_against_its_vendored_schema(name):
    result = check_schema(TEMPLATES / name, SCHEMAS[name])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name, breakage", [
    ("github-workflow.yml", ("    runs-on: ubuntu-latest\n", "    runs-on: [\n")),          # not YAML any more
    ("github-workflow.yml", ("timeout-minutes: 90", "timeout-minutes: ninety")),          # wrong type
    ("gitlab-ci.yml", ("  resource_group: neurontune-registry", "  resource_group: [a, b]")),  # not a string
    ("gitlab-ci.yml", ("    exit_codes: [3]", "    exit_codes: three")),                  # wrong type
    ("gitlab-ci.yml", ("    when: always\n", "    when: sometimes\n")),                     # not one of the values
])
def test_schema_check_rejects_a_broken_template(name, breakage, tmp_path):
    text = (TEMPLATES / name).read_text()
    assert breakage[0] in text
    broken = tmp_path / name
    broken.write_text(text.replace(breakage[0], breakage[1], 1))
    assert check_schema(broken, SCHEMAS[name]).returncode != 0


def test_zizmor_finds_nothing_of_high_severity_in_the_workflow():
    high = [finding for finding in zizmor_findings(TEMPLATES / "github-workflow.yml")
            if finding["determinations"]["severity"] == "High"]
    assert not high, json.dumps(high, indent=1)[:3000]


def test_zizmor_flags_a_secret_interpolated_into_a_script(tmp_path):
    """The audit runs for real: a pull request title pasted into a shell step is a high-severity injection."""
    workflow = (TEMPLATES / "github-workflow.yml").read_text()
    step = "      - name: Install\n        run: bash templates/ci/steps.sh install\n"
    assert step in workflow
    injected = tmp_path / "injected.yml"
    injected.write_text(workflow.replace(step, step.replace(
        "bash templates/ci/steps.sh install", 'echo "${{ github.event.pull_request.title }}"')))
    findings = zizmor_findings(injected)
    assert any(finding["ident"] == "template-injection" and finding["determinations"]["severity"] == "High"
               for finding in findings), json.dumps(findings, indent=1)[:3000]


def test_steps_script_is_valid_bash_and_names_an_unknown_step(tmp_path):
    script = TEMPLATES / "steps.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    result = subprocess.run(["bash", str(script), "deploy"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2 and "unknown step 'deploy'" in result.stderr
