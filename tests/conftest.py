import os
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault('OMP_NUM_THREADS', '1')

@pytest.fixture
def runs(tmp_path, monkeypatch):
    "A private run cache and figures folder for one test."
    monkeypatch.setenv('MEMLOC_RUNS', str(tmp_path/'runs'))
    monkeypatch.setenv('MEMLOC_FIGURES', str(tmp_path/'figures'))
    return tmp_path
