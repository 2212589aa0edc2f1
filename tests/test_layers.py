"""The package's layers point one way (data -> models -> training -> predict -> inspect -> api -> cli) and no two
modules of a package import each other: the import-linter contracts in pyproject.toml, checked on every run."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_are_kept():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert lint, "import-linter is a test dependency: pip install -e .[test]"
    result = subprocess.run(
        [lint, "--no-cache", "--config", str(ROOT / "pyproject.toml")], capture_output=True, text=True, cwd=ROOT / "src"
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 kept, 0 broken" in result.stdout
