"""Checkpoints: save/load round trips, the on-disk format, atomic writes, clear errors."""
import errno
import json
import math
import os
import re

import numpy as np
import pytest

import tinygen as tg
from tinygen import backend
from tinygen.autograd import Tensor
from tinygen.serialization import MANIFEST_KEY, load, save


# --------------------------------------------------------------------------- helpers

def assert_same(expected, got, device, where="obj"):
    """``got`` has the container types, key order, leaf types, dtypes, shapes and values of
    ``expected``, with tensors and arrays on ``device``."""
    if isinstance(expected, Tensor):
        assert type(got) is Tensor, f"{where}: {type(got).__name__}, not a Tensor"
        assert got.device == device, where
        assert got.requires_grad is False and got.grad is None and got.is_leaf, where
        _assert_same_array(expected.data, got.data, where)
    elif isinstance(expected, np.ndarray) or backend.is_cupy_array(expected):
        want = np.ndarray if device == "cpu" else backend.array_module("cuda").ndarray
        assert type(got) is want, f"{where}: {type(got).__name__}, expected {want.__name__}"
        _assert_same_array(expected, got, where)
    elif isinstance(expected, np.generic):
        assert type(got) is type(expected), f"{where}: {type(got)} vs {type(expected)}"
        assert got == expected or (np.isnan(got) and np.isnan(expected)), where
    elif isinstance(expected, float):
        assert type(got) is float, f"{where}: {type(got).__name__}, not float"
        if math.isnan(expected):
            assert math.isnan(got), where
        else:  # == alone would let -0.0 pass for 0.0
            assert got == expected and math.copysign(1, got) == math.copysign(1, expected), where
    elif isinstance(expected, dict):
        assert type(got) is dict, f"{where}: {type(got).__name__}, not dict"
        assert list(got) == list(expected), f"{where}: keys {list(got)} != {list(expected)}"
        for k in expected:
            assert type(next(g for g in got if g == k)) is type(k), f"{where}: key {k!r}"
            assert_same(expected[k], got[k], device, f"{where}[{k!r}]")
    elif isinstance(expected, (list, tuple)):
        assert type(got) is type(expected), f"{where}: {type(got)} vs {type(expected)}"
        assert len(got) == len(expected), where
        for i, (e, g) in enumerate(zip(expected, got)):
            assert_same(e, g, device, f"{where}[{i}]")
    else:  # None, bool, int, str
        assert type(got) is type(expected), f"{where}: {type(got)} vs {type(expected)}"
        assert got == expected, f"{where}: {got!r} != {expected!r}"


def _assert_same_array(expected, got, where):
    assert got.dtype == expected.dtype, f"{where}: dtype {got.dtype} != {expected.dtype}"
    assert got.shape == expected.shape, f"{where}: shape {got.shape} != {expected.shape}"
    np.testing.assert_array_equal(backend.to_numpy(got), backend.to_numpy(expected),
                                  err_msg=where)  # NaNs compare equal here
    if isinstance(got, np.ndarray):  # optimizers update loaded state in place
        assert got.flags.writeable, f"{where}: loaded read-only"


def every_leaf(device):
    """A checkpoint-like structure with every supported kind of leaf and container
    (the same values on every call)."""
    def t(array):
        return tg.tensor(array, device=device)

    def a(array):
        return backend.to_device(array, device)

    rng = np.random.default_rng(1)
    w = rng.standard_normal((5, 6))
    return {
        "model": {
            "fc.weight": t(rng.standard_normal((3, 4)).astype(np.float32)),
            "fc.bias": t(np.zeros(4, np.float32)),
            "scale": t(np.array(2.5, np.float64)),              # 0-d float64
            "counts": t(np.array([1, -2, 2**62], np.int64)),
            "mask": t(np.array([[True, False], [False, True]])),
            "empty": t(np.zeros((0, 3), np.float32)),
            "step0d": t(np.array(7, np.int32)),
            "nan": t(np.array([np.nan, np.inf, -np.inf, -0.0], np.float32)),
        },
        "arrays": [
            a(rng.standard_normal((2, 3)).astype(np.float32)),
            a(np.zeros((2, 0, 3))),                               # empty float64
            a(np.array(3.5)),                                     # 0-d
            a(np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max])),
            a(np.array([True, False, True])),
            a(np.arange(256, dtype=np.uint8).reshape(16, 16)),
            a(np.array([1 + 2j, -3j], np.complex64)),
            a(np.array([0.5, 65504.0], np.float16)),
            a(np.asfortranarray(w)),
            a(w[::2, 1::3]),                                      # a strided view
        ],
        "scalars": (True, False, 0, -1, 2**127 + 12345, -(2**200), 1.5, 0.1, -0.0,
                    math.nan, math.inf, -math.inf, 5e-324, "", "héllo ✓\n\"q\" \\ \x00",
                    None),
        "numpy_scalars": [np.float32(1.25), np.float64(0.1), np.int64(-3), np.uint8(200),
                          np.bool_(True)],
        "nested": {"tuple_in_list": [(1, (2.0, [None])), []], "empty_dict": {},
                   "empty_tuple": (), "empty_list": [], "deep": {"a": {"b": {"c": [1]}}},
                   "order": {"z": 1, "a": 2, "m": 3}},
        "optimizer": {
            "state": {0: {"step": 3, "m": t(np.ones(4, np.float32))},
                      1: {"step": 3, "m": t(np.full(4, 2.0, np.float32))}},
            "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0, 1]}],
        },
        "flags": {True: "bool key", 7: "int key", "7": "str key"},
    }


# --------------------------------------------------------------------------- round trips

def test_round_trip_every_leaf_type(tmp_path, device):
    obj = every_leaf(device)
    path = tmp_path / "ckpt.npz"
    save(obj, path)
    assert_same(obj, load(path, device=device), device)


def test_round_trip_compressed(tmp_path, device):
    obj = every_leaf(device)
    obj["big"] = np.zeros(100_000, np.float32)
    save(obj, tmp_path / "plain.npz")
    save(obj, tmp_path / "small.npz", compress=True)
    assert (tmp_path / "small.npz").stat().st_size < (tmp_path / "plain.npz").stat().st_size / 10
    assert_same(obj, load(tmp_path / "small.npz", device=device), device)


def test_loads_onto_the_requested_device(tmp_path, device):
    # Saved on the CPU, loaded onto `device`; saved from `device`, loaded onto the CPU.
    save(every_leaf("cpu"), tmp_path / "from_cpu.npz")
    assert_same(every_leaf("cpu"), load(tmp_path / "from_cpu.npz", device=device), device)
    save(every_leaf(device), tmp_path / "from_device.npz")
    assert_same(every_leaf("cpu"), load(tmp_path / "from_device.npz"), "cpu")


def test_tensors_load_detached(tmp_path):
    w = tg.tensor([1.0, -2.0], requires_grad=True)
    y = w * 3.0  # a non-leaf with a graph
    save({"w": w, "y": y}, tmp_path / "c.npz")
    out = load(tmp_path / "c.npz")
    for name, want in (("w", [1.0, -2.0]), ("y", [3.0, -6.0])):
        assert out[name].requires_grad is False and out[name].grad_fn is None
        np.testing.assert_array_equal(out[name].numpy(), np.array(want, np.float32))


def test_loaded_arrays_do_not_alias_the_saved_ones(tmp_path):
    x = np.arange(3.0)
    save({"x": x}, tmp_path / "c.npz")
    y = load(tmp_path / "c.npz")["x"]
    y[0] = 100.0
    assert x[0] == 0.0


def test_shared_objects_are_not_mistaken_for_cycles(tmp_path):
    shared = [1, np.arange(2)]
    save({"a": shared, "b": shared, "c": (shared, shared)}, tmp_path / "c.npz")
    out = load(tmp_path / "c.npz")
    assert out["a"][0] == out["b"][0] == out["c"][1][0] == 1


def test_random_state_round_trips_and_reproduces_draws(tmp_path):
    tg.manual_seed(123)
    tg.randn(10)                      # move away from the freshly seeded state
    state = tg.get_rng_state()
    expected = tg.randn(7).numpy()
    save({"rng": state, "step": 10}, tmp_path / "c.npz")
    tg.randn(100)                     # the run goes on after the checkpoint
    loaded = load(tmp_path / "c.npz")["rng"]
    assert loaded == state            # the 128-bit PCG64 integers compare exactly
    assert type(loaded["numpy"]["state"]["state"]) is int
    tg.set_rng_state(loaded)
    np.testing.assert_array_equal(tg.randn(7).numpy(), expected)


# --------------------------------------------------------------------------- the format

def test_file_is_a_plain_npz_with_a_json_manifest(tmp_path):
    path = tmp_path / "model.ckpt"    # not ending in .npz: the name is used as given
    w = tg.randn(3, 4)
    save({"w": w, "step": 5, "m": np.arange(3)}, path)
    assert sorted(os.listdir(tmp_path)) == ["model.ckpt"]
    with np.load(path, allow_pickle=False) as npz:
        assert set(npz.files) == {MANIFEST_KEY, "a0", "a1"}
        assert npz[MANIFEST_KEY].dtype == np.uint8
        manifest = json.loads(npz[MANIFEST_KEY].tobytes().decode("utf-8"))
        assert manifest["format"] == "tinygen-checkpoint" and manifest["version"] == 1
        items = dict(manifest["root"]["items"])
        assert items["step"] == {"t": "int", "v": 5}
        assert items["w"] == {"t": "tensor", "key": "a0", "dtype": "<f4", "shape": [3, 4]}
        assert items["m"]["t"] == "array"
        np.testing.assert_array_equal(npz[items["w"]["key"]], w.numpy())
        np.testing.assert_array_equal(npz[items["m"]["key"]], np.arange(3))


def test_creates_missing_parent_directories(tmp_path):
    path = tmp_path / "runs" / "exp1" / "ckpt.npz"
    save({"step": 1}, path)
    assert load(path) == {"step": 1}


def test_saving_again_replaces_the_file(tmp_path):
    path = tmp_path / "ckpt.npz"
    save({"step": 1, "w": np.zeros(3)}, path)
    save({"step": 2}, path)
    assert load(path) == {"step": 2}
    assert os.listdir(tmp_path) == ["ckpt.npz"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_file_permissions_follow_the_umask(tmp_path):
    umask = os.umask(0o022)
    try:
        save({"step": 1}, tmp_path / "c.npz")
    finally:
        os.umask(umask)
    assert (tmp_path / "c.npz").stat().st_mode & 0o777 == 0o644


# --------------------------------------------------------------------------- atomic writes

def _savez_that_dies_midway(exc):
    def savez(file, *args, **kwds):
        file.write(b"PK\x03\x04" + b"\x00" * 1000)  # some bytes reach the file first
        raise exc
    return savez


def _raise(exc):
    def f(*args, **kwargs):
        raise exc
    return f


FAILURES = {
    "savez-disk-full": lambda mp: mp.setattr(
        np, "savez", _savez_that_dies_midway(OSError(errno.ENOSPC, "No space left on device"))),
    "savez-interrupted": lambda mp: mp.setattr(
        np, "savez", _savez_that_dies_midway(KeyboardInterrupt())),
    "fsync": lambda mp: mp.setattr(os, "fsync", _raise(OSError(errno.EIO, "I/O error"))),
    "replace": lambda mp: mp.setattr(os, "replace", _raise(OSError(errno.EACCES, "denied"))),
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_a_failed_save_leaves_the_old_checkpoint_untouched(tmp_path, monkeypatch, failure):
    path = tmp_path / "ckpt.npz"
    save({"step": 1, "w": np.arange(4.0)}, path)
    before = path.read_bytes()
    FAILURES[failure](monkeypatch)
    with pytest.raises((OSError, KeyboardInterrupt)):
        save({"step": 2, "w": np.ones(1000)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.npz"], "a temporary file was left behind"
    out = load(path)
    assert out["step"] == 1


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_a_failed_first_save_leaves_nothing(tmp_path, monkeypatch, failure):
    FAILURES[failure](monkeypatch)
    with pytest.raises((OSError, KeyboardInterrupt)):
        save({"step": 2, "w": np.ones(10)}, tmp_path / "ckpt.npz")
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- bad input

UNSUPPORTED = [
    ({"optimizer": {"state": [set()]}}, TypeError,
     "save: cannot store object of type set at ['optimizer']['state'][0]"),
    ({"optimizer": {"state": {0: {"m": object()}}}}, TypeError,
     "save: cannot store object of type object at ['optimizer']['state'][0]['m']"),
    (b"raw bytes", TypeError, "save: cannot store object of type bytes at the top level"),
    ([1, {"cfg": {(1, 2): 3}}], TypeError,
     "save: cannot store a dict key of type tuple ((1, 2)) at [1]['cfg']"),
    ({"a": [np.array([{}], dtype=object)]}, TypeError,
     "save: cannot store an array of dtype object at ['a'][0]"),
    ({"names": np.array(["x", "y"])}, TypeError,
     "save: cannot store an array of dtype <U1 at ['names']"),
    ({"m": np.ma.masked_array([1.0, 2.0], mask=[0, 1])}, TypeError,
     "save: cannot store a masked array at ['m']"),
]


@pytest.mark.parametrize("obj, error, message", UNSUPPORTED)
def test_unsupported_objects_are_refused_with_their_key_path(tmp_path, obj, error, message):
    path = tmp_path / "ckpt.npz"
    save({"step": 1}, path)
    before = path.read_bytes()
    with pytest.raises(error, match=re.escape(message)):
        save(obj, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["ckpt.npz"]


def test_a_structure_that_contains_itself_is_refused(tmp_path):
    loop = [1]
    loop.append({"self": loop})
    with pytest.raises(ValueError, match=re.escape("contains itself at [1]['self']")):
        save(loop, tmp_path / "c.npz")
    assert os.listdir(tmp_path) == []


def test_missing_file(tmp_path):
    path = tmp_path / "nope" / "ckpt.npz"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))) as e:
        load(path)
    assert e.value.filename == str(path)


def test_unknown_device_fails_before_reading(tmp_path):
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        load(tmp_path / "does-not-matter.npz", device="tpu")


def _checkpoint_bytes(tmp_path):
    save({"w": np.arange(1000, dtype=np.float32), "step": 3}, tmp_path / "good.npz")
    return (tmp_path / "good.npz").read_bytes()


def _flip_a_data_byte(data):
    data = bytearray(data)
    data[data.index(b"a0.npy") + 400] ^= 0xFF  # inside the array's values
    return bytes(data)


CORRUPTIONS = {
    "truncated-half": lambda b: b[: len(b) // 2],
    "truncated-tail": lambda b: b[:-10],
    "truncated-one-byte": lambda b: b[:-1],
    "empty": lambda b: b"",
    "random-bytes": lambda b: np.random.default_rng(0).bytes(len(b)),
    "flipped-data-byte": _flip_a_data_byte,
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_corrupt_files_give_a_clear_error(tmp_path, corruption):
    path = tmp_path / "bad.npz"
    path.write_bytes(CORRUPTIONS[corruption](_checkpoint_bytes(tmp_path)))
    with pytest.raises(ValueError, match="not a readable tinygen checkpoint: the file is "
                                         "truncated or corrupt") as e:
        load(path)
    assert type(e.value) is ValueError and str(path) in str(e.value)


def _npz_with_manifest(path, manifest, **arrays):
    text = json.dumps(manifest).encode("utf-8")
    with open(path, "wb") as f:
        np.savez(f, **{MANIFEST_KEY: np.frombuffer(text, np.uint8)}, **arrays)


def test_foreign_files_are_not_checkpoints(tmp_path):
    np.savez(tmp_path / "plain.npz", x=np.arange(3))
    np.save(tmp_path / "single.npy", np.arange(3))
    _npz_with_manifest(tmp_path / "other.npz", {"format": "something-else", "version": 1})
    for name, why in (("plain.npz", "has no '__tinygen_manifest__' member"),
                      ("single.npy", "single .npy array"),
                      ("other.npz", "does not name the format")):
        with pytest.raises(ValueError, match=re.escape("not a tinygen checkpoint (") + ".*"
                           + re.escape(why)):
            load(tmp_path / name)


def test_a_newer_format_version_says_to_upgrade(tmp_path):
    _npz_with_manifest(tmp_path / "c.npz", {"format": "tinygen-checkpoint", "version": 99,
                                            "root": {"t": "none"}})
    with pytest.raises(ValueError, match="format version 99, newer .* upgrade tinygen"):
        load(tmp_path / "c.npz")


@pytest.mark.parametrize("root, message", [
    ({"t": "tensor", "key": "a0", "dtype": "<f4", "shape": [2]}, "manifest says <f4 and [2]"),
    ({"t": "array", "key": "a0", "dtype": "<f8", "shape": [3]}, "manifest says <f8 and [3]"),
    ({"t": "array", "key": "a7", "dtype": "<f4", "shape": [3]}, "'a7' it refers to is missing"),
    ({"t": "set", "items": []}, "unknown node type 'set'"),
    ({"t": "int", "v": "12"}, "a int node holds '12'"),
    ({"t": "dict", "items": [["k"]]}, "not a [key, node] pair"),
    ([1, 2], "expected a node object"),
])
def test_a_malformed_manifest_is_reported(tmp_path, root, message):
    _npz_with_manifest(tmp_path / "c.npz", {"format": "tinygen-checkpoint", "version": 1,
                                            "root": root}, a0=np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=re.escape(message)) as e:
        load(tmp_path / "c.npz")
    assert "malformed tinygen manifest" in str(e.value)
