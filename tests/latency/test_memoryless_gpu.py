"""A hardware entry without memoryGB (as in BLIS v0.6.1's own configs) runs with the default KV count and says so."""

from __future__ import annotations

import json
from pathlib import Path

from blis_sim import cli, logging_setup

DATA = Path(__file__).parents[2] / "src" / "blis_sim" / "data"


def test_memoryless_entry_warns_once_and_runs(tmp_path, capsys):
    entries = json.loads((DATA / "hardware_config.json").read_text())
    h100 = {k: v for k, v in entries["H100"].items() if k != "memoryGB"}
    hw = tmp_path / "hw.json"
    hw.write_text(json.dumps({"H100": h100}))
    try:
        rc = cli.run_cli(["run", "--model", "meta-llama/llama-3.1-8b-instruct", "--model-config-folder",
                          str(DATA / "model_configs" / "llama-3.1-8b-instruct"), "--hardware-config", str(hw),
                          "--hardware", "H100", "--tp", "1", "--num-requests", "5"], prog_name="blis")
    finally:
        logging_setup.reset()
    out = capsys.readouterr()
    assert rc == 0 and '"completed_requests": 5' in out.out
    warnings = [line for line in out.err.splitlines() if "memoryGB" in line]
    assert warnings == ["blis: warning: hardware config entry H100 has no memoryGB: KV capacity is the default "
                        "1000000 blocks, as in BLIS v0.6.1, not what vLLM would allocate (add memoryGB or pass "
                        "--total-kv-blocks)"]
