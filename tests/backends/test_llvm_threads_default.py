"""The default thread count: $LAMINA_NUM_THREADS, else the process's CPU affinity capped by
its cgroup CPU quota (v2 cpu.max, v1 cpu.cfs_quota_us), with fake cgroup trees."""

import os

import pytest

from backends import llvm
from backends.llvm.runtime import default_threads
from ir import Graph, TensorType
from ir.errors import OptionError


@pytest.fixture
def cpus(monkeypatch):
    """Pretend this process may run on `n` CPUs (its affinity mask)."""
    def set_cpus(n: int) -> None:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(n)), raising=False)
    set_cpus(8)
    return set_cpus


def fake_cgroups(tmp_path, files: dict[str, str], proc: str = "0::/\n"):
    """A cgroup root holding `files` (path -> content) and a /proc/self/cgroup text."""
    root = tmp_path / "cgroup"
    root.mkdir()
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    (tmp_path / "proc_cgroup").write_text(proc)
    return {"cgroup_root": root, "proc_cgroup": tmp_path / "proc_cgroup", "environ": {}}


def test_affinity_without_quota(tmp_path, cpus):
    cpus(3)
    assert default_threads(**fake_cgroups(tmp_path, {})) == 3


def test_affinity_not_cpu_count(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {5}, raising=False)
    assert default_threads(**fake_cgroups(tmp_path, {})) == 1


@pytest.mark.parametrize("cpu_max, want", [
    ("200000 100000\n", 2),
    ("150000 100000\n", 2),  # 1.5 CPUs: rounded up
    ("50000 100000\n", 1),  # half a CPU: at least one thread
    ("max 100000\n", 8),  # no quota
    ("1600000 100000\n", 8),  # a quota above the affinity does not add CPUs
    ("garbage\n", 8),  # unreadable: no quota
    ("0 100000\n", 8),
])
def test_cgroup_v2_quota_caps_affinity(tmp_path, cpus, cpu_max, want):
    assert default_threads(**fake_cgroups(tmp_path, {"cpu.max": cpu_max})) == want


def test_cgroup_v2_nested_takes_the_tightest_ancestor(tmp_path, cpus):
    files = {"a/b/cpu.max": "max 100000", "a/cpu.max": "300000 100000",
             "cpu.max": "max 100000", "other/cpu.max": "100000 100000"}
    assert default_threads(**fake_cgroups(tmp_path, files, "0::/a/b\n")) == 3


def test_cgroup_path_missing_under_the_mount_falls_back_to_the_mount(tmp_path, cpus):
    # in a container /proc/self/cgroup may name the host's path while the mount point is the
    # container's own cgroup
    files = {"cpu.max": "200000 100000"}
    assert default_threads(**fake_cgroups(tmp_path, files, "0::/docker/abc\n")) == 2


@pytest.mark.parametrize("controller", ["cpu", "cpu,cpuacct"])
def test_cgroup_v1_quota(tmp_path, cpus, controller):
    files = {f"{controller}/cpu.cfs_quota_us": "250000\n",
             f"{controller}/cpu.cfs_period_us": "100000\n",
             "memory/memory.limit_in_bytes": "1000\n"}
    proc = f"5:memory:/\n4:{controller}:/\n1:name=systemd:/\n"
    assert default_threads(**fake_cgroups(tmp_path, files, proc)) == 3


def test_cgroup_v1_no_quota(tmp_path, cpus):
    files = {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}
    assert default_threads(**fake_cgroups(tmp_path, files, "4:cpu:/\n")) == 8


def test_no_cgroup_filesystem(tmp_path, cpus):
    cpus(4)
    assert default_threads(environ={}, cgroup_root=tmp_path / "absent",
                           proc_cgroup=tmp_path / "absent.txt") == 4


@pytest.mark.parametrize("value, want", [("3", 3), (" 12 ", 12), ("1", 1), ("256", 256)])
def test_env_overrides_affinity_and_quota(tmp_path, cpus, value, want):
    kw = fake_cgroups(tmp_path, {"cpu.max": "100000 100000"})
    assert default_threads(**{**kw, "environ": {"LAMINA_NUM_THREADS": value}}) == want


@pytest.mark.parametrize("value", ["0", "-2", "two", "", "2.5", "1e3", "257", "99999999"])
def test_env_must_be_a_thread_count(tmp_path, cpus, value):
    kw = fake_cgroups(tmp_path, {})
    with pytest.raises(OptionError, match="LAMINA_NUM_THREADS") as info:
        default_threads(**{**kw, "environ": {"LAMINA_NUM_THREADS": value}})
    assert isinstance(info.value, ValueError) and repr(value) in str(info.value)


def _tiny() -> Graph:
    g = Graph()
    g.outputs = [g.call("relu", g.add_input("x", TensorType((3,))))]
    return g


def test_compile_graph_uses_the_default(monkeypatch):
    monkeypatch.delenv("LAMINA_NUM_THREADS", raising=False)
    assert llvm.compile_graph(_tiny()).num_threads == default_threads()
    assert 1 <= default_threads() <= len(os.sched_getaffinity(0))


def test_compile_graph_reads_the_env_and_explicit_wins(monkeypatch):
    monkeypatch.setenv("LAMINA_NUM_THREADS", "3")
    assert llvm.compile_graph(_tiny()).num_threads == 3
    assert llvm.compile_graph(_tiny(), num_threads=2).num_threads == 2
    monkeypatch.setenv("LAMINA_NUM_THREADS", "lots")
    with pytest.raises(OptionError, match="LAMINA_NUM_THREADS"):
        llvm.compile_graph(_tiny())
    assert llvm.compile_graph(_tiny(), num_threads=1).num_threads == 1
