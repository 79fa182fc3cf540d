"""hardware_config.json reading (ROOFLINE.md §1.2), v1 validation messages (§9 D16) and the packaged entries."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from blis_sim.errors import InputError
from blis_sim.latency.hardware import KEYS, load_hardware

DATA = Path(__file__).parents[2] / "src" / "blis_sim" / "data"
PACKAGED = DATA / "hardware_config.json"  # the project's defaults (H100 calibrated on the shared measurements)
HANDSET = DATA / "hardware_config_handset.json"  # the hand-set constants of ROOFLINE.md §1.2 for every GPU
# terms added after error analysis
ADDED = {"requestOverheadMicros", "allReduceBwGBs", "decodeKvBwEff", "moeExperts", "gemmEta", "flatStepOverhead"}
PEAKS = {  # public datasheet figures: dense BF16 TFLOPS, HBM TB/s
    "H100": (989.5, 3.35), "H100-PCIe": (756.5, 2.0), "H200": (989.5, 4.8), "A100-80": (312.0, 2.039),
    "A100-80GB": (312.0, 2.039),
    "A100-SXM": (312.0, 2.039), "A100-80GB-PCIe": (312.0, 1.935), "A100-40GB": (312.0, 1.555),
    "L40S": (362.05, 0.864), "B200": (2250.0, 8.0),
}
NO_PRICE = {"H100-PCIe"}  # none of the clouds whose rates data/README.md uses lists it: capacity shows no cost
H100_TABLE = {
    "TFlopsPeak": 989.5, "BwPeakTBs": 3.35, "BwEffConstant": 0.72, "TOverheadMicros": 50.0, "perLayerOverhead": 5.0,
    "mfuPrefill": 0.65, "mfuDecode": 0.12, "allReduceLatency": 20.0, "tpScalingExponent": 0.8,
    "decodeTpScalingExponent": 1.0, "mfuPrefillMultiplier": 1.0, "mfuDecodeMultiplier": 1.0, "prefillBwFactor": 1.0,
    "decodeBwFactor": 1.0, "vectorPeakFraction": 0.1, "prefillOverheadMicros": 100.0,
    "mixedPrefillOverheadMicros": 50.0,
}


def write(tmp_path: Path, content) -> Path:
    path = tmp_path / "hw.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


@pytest.mark.parametrize("path", [PACKAGED, HANDSET], ids=["packaged", "handset"])
@pytest.mark.parametrize("gpu", sorted(PEAKS))
def test_packaged_entries_complete_and_valid(gpu, path):
    raw = json.loads(path.read_text())[gpu]
    # the price: blis capacity only; fp8TFlopsPeak and efficiencyModel: roofline v2 (datasheet, shipped kernel model)
    base = set(KEYS) - ADDED | {"memoryGB", "linkBwGBs", "priceUsdPerHour", "fp8TFlopsPeak", "efficiencyModel"}
    if gpu in NO_PRICE:
        base -= {"priceUsdPerHour"}
    assert base <= set(raw) <= base | ADDED | {"rooflineV2"}
    if path == HANDSET:
        assert set(raw) == base  # hand-set: none of the added terms
    hw = load_hardware(path, gpu)
    hw.check_v1()
    hw.for_v2().check_v2()
    assert (hw.tflops_peak, hw.bw_peak_tbs) == PEAKS[gpu]
    assert hw.memory_gb and hw.memory_gb > 0
    assert hw.link_bw_gbs and hw.link_bw_gbs > 0  # roofline v2's all-reduce bandwidth
    if gpu not in NO_PRICE:
        assert raw["priceUsdPerHour"] > 0  # US dollars per GPU-hour (data/README.md), read by blis capacity and sweep
    assert hw.fp8_peak_factor == (0.0 if gpu.startswith("A100") else pytest.approx(2.0, rel=0.02))  # Ampere: no FP8


def test_handset_h100_and_a100_follow_the_spec_table():
    h100 = load_hardware(HANDSET, "H100")
    assert {k: h100.value(k) for k in H100_TABLE} == H100_TABLE
    a = [load_hardware(HANDSET, n) for n in ("A100-80", "A100-80GB", "A100-SXM")]
    assert {x.describe()["bw_eff_constant"] for x in a} == {0.70}
    assert a[0].mfu_prefill == 0.60 and a[0].tp_scaling_exponent == 0.75 and a[0].prefill_overhead_micros == 120.0


def test_handset_matches_reference_calibration(reference_dir):
    ref = reference_dir / "hardware_config_roofline.json"
    for ours_name, ref_name in (("H100", "H100"), ("A100-SXM", "A100-SXM")):
        ours, theirs = load_hardware(HANDSET, ours_name), load_hardware(ref, ref_name)
        assert {k: ours.value(k) for k in KEYS} == {k: theirs.value(k) for k in KEYS}


def test_keys_case_insensitive_unknown_ignored_last_wins(tmp_path):
    entry = {**H100_TABLE, "MFUPREFILL": 0.5, "mfuprefill": 0.55, "somethingElse": "x", "MemoryGb": 80}
    del entry["mfuPrefill"]
    hw = load_hardware(write(tmp_path, {"H100": entry}), "H100")
    assert hw.mfu_prefill == 0.55 and hw.memory_gb == 80.0
    hw.check_v1()


def test_missing_key_reads_zero_and_fails_v1(tmp_path):
    path = write(tmp_path, {"H100": {"TFlopsPeak": 989.5, "BwPeakTBs": 3.35}})
    hw = load_hardware(path, "H100")
    assert hw.bw_eff_constant == 0.0 and hw.memory_gb is None
    with pytest.raises(InputError) as e:
        hw.check_v1()
    assert str(e.value) == "hardware config H100: BwEffConstant must be a positive number, got 0"
    hw.check_v2()  # v2 needs only the peaks


@pytest.mark.parametrize(
    "key,value,shown",
    [("BwEffConstant", 0, "0"), ("mfuDecode", -0.5, "-0.5"), ("vectorPeakFraction", math.nan, "nan"),
     ("TFlopsPeak", math.inf, "inf"), ("decodeBwFactor", 0.0, "0"), ("mfuPrefillMultiplier", -1, "-1")],
)
def test_v1_denominators_must_be_positive(tmp_path, key, value, shown):
    hw = load_hardware(write(tmp_path, {"H100": {**H100_TABLE, key: value}}), "H100")
    with pytest.raises(InputError) as e:
        hw.check_v1()
    assert str(e.value) == f"hardware config H100: {key} must be a positive number, got {shown}"


def test_nan_literal_in_file(tmp_path):
    text = json.dumps({"H100": H100_TABLE}).replace('"mfuPrefill": 0.65', '"mfuPrefill": NaN')
    hw = load_hardware(write(tmp_path, text), "H100")
    with pytest.raises(InputError, match=r"^hardware config H100: mfuPrefill must be a positive number, got nan$"):
        hw.check_v1()


def test_overheads_must_be_non_negative_and_exponents_finite(tmp_path):
    hw = load_hardware(write(tmp_path, {"H100": {**H100_TABLE, "TOverheadMicros": -1}}), "H100")
    with pytest.raises(InputError, match="TOverheadMicros must be a finite number >= 0, got -1"):
        hw.check_v1()
    hw = load_hardware(write(tmp_path, {"H100": {**H100_TABLE, "tpScalingExponent": math.inf}}), "H100")
    with pytest.raises(InputError, match="tpScalingExponent must be a finite number, got inf"):
        hw.check_v1()
    # 0 is valid for both exponents (no TP speed-up; decode 0 means 1.0)
    load_hardware(write(tmp_path, {"H100": {**H100_TABLE, "tpScalingExponent": 0}}), "H100").check_v1()


def test_gpu_not_in_file_lists_sorted_names(tmp_path):
    path = write(tmp_path, {"b": H100_TABLE, "A": H100_TABLE, "C": H100_TABLE})
    with pytest.raises(InputError) as e:
        load_hardware(path, "H100")
    assert str(e.value) == f"--hardware 'H100' is not in --hardware-config {path} (available: A, C, b)"


def test_gpu_name_exact_then_unique_case_insensitive(tmp_path):
    path = write(tmp_path, {"H100": H100_TABLE})
    assert load_hardware(path, "h100").name == "H100"


def test_non_number_value(tmp_path):
    with pytest.raises(InputError, match=r"H100.mfuPrefill must be a number, got \"high\""):
        load_hardware(write(tmp_path, {"H100": {**H100_TABLE, "mfuPrefill": "high"}}), "H100")


def test_file_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_hardware(tmp_path / "absent.json", "H100")
    with pytest.raises(InputError, match=r"not valid JSON \(line 1"):
        load_hardware(write(tmp_path, "{oops"), "H100")
    with pytest.raises(InputError, match="must hold a JSON object"):
        load_hardware(write(tmp_path, "[1]"), "H100")
    with pytest.raises(InputError, match="entry 'H100' must be a JSON object"):
        load_hardware(write(tmp_path, {"H100": 3}), "H100")


def test_link_bandwidth_optional_and_checked(tmp_path):
    hw = load_hardware(write(tmp_path, {"H100": {"TFlopsPeak": 989.5, "BwPeakTBs": 3.35, "LINKBWGBS": 450}}), "H100")
    assert hw.link_bw_gbs == 450.0
    assert load_hardware(write(tmp_path, {"H100": {"TFlopsPeak": 1.0}}), "H100").link_bw_gbs is None
    with pytest.raises(InputError, match=r"H100\.linkBwGBs must be a finite number >= 0, got -1"):
        load_hardware(write(tmp_path, {"H100": {"linkBwGBs": -1}}), "H100")


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("TFlopsPeak", 1e-300, "TFlopsPeak must be between 1 and 100000 (TFLOP/s), got 1e-300"),
        ("TFlopsPeak", 1e300, "TFlopsPeak must be between 1 and 100000 (TFLOP/s)"),
        ("BwPeakTBs", 1e-300, "BwPeakTBs must be between 0.01 and 1000 (TB/s)"),
        ("mfuPrefill", 1.5, "mfuPrefill must be between 0.001 and 1 (a fraction of the peak), got 1.5"),
        ("mfuDecode", 1e300, "mfuDecode must be between 0.001 and 1 (a fraction of the peak)"),
        ("tpScalingExponent", 1e300, "tpScalingExponent must be between -10 and 10 (an exponent)"),
        ("TOverheadMicros", 1e12, "TOverheadMicros must be between 0 and 1e+07 (microseconds)"),
        ("memoryGB", 1e300, "memoryGB must be between 1 and 100000"),
    ],
)
def test_values_no_gpu_can_have_are_refused(tmp_path, key, value, message):
    """Past the finiteness and sign rules, each key is bounded by what a GPU can physically be (PHYSICAL)."""
    hw = load_hardware(write(tmp_path, {"H100": {**H100_TABLE, "memoryGB": 80, key: value}}), "H100")
    with pytest.raises(InputError) as e:
        hw.check_v1()
    assert message in str(e.value)


def test_v2_keys_are_bounded_too(tmp_path):
    entry = {**H100_TABLE, "rooflineV2": {"gemmEta": 1e-300, "TOverheadMicros": 1e9}}
    hw = load_hardware(write(tmp_path, {"H100": entry}), "H100").for_v2()
    with pytest.raises(InputError, match=r"TOverheadMicros must be between 0 and 1e\+07"):
        hw.check_v2()
