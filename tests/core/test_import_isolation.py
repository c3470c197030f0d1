import subprocess
import sys


def test_core_and_models_load_no_pipeline_or_tracking_framework():
    code = (
        "import sys, neurontune.core, neurontune.models.training, neurontune.models.batching;"
        "bad = [m for m in ('kedro', 'mlflow', 'dvc') if m in sys.modules]; print(bad); sys.exit(bool(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
