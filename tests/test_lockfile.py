"""requirements.lock: the production install, every runtime dependency pinned and hashed,
nothing of the test tools. A dependency added to pyproject.toml without re-locking
(bash .ci/lock) fails here, not at an install on a production host."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parents[1]
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)")


def _locked() -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes)."""
    pins: dict[str, tuple[str, int]] = {}
    current = None
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        m = _PIN.match(line)
        if m:
            current = canonicalize_name(m.group(1))
            pins[current] = (m.group(2), 0)
        elif current and "--hash=sha256:" in line:
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
    return pins


def test_every_runtime_dependency_is_pinned_with_hashes_in_the_lock() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    locked = _locked()
    for spec in project["dependencies"]:
        req = Requirement(spec.split("#")[0])
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is not in requirements.lock: run bash .ci/lock"
        assert req.specifier.contains(locked[name][0]), f"{req.name}: lock has {locked[name][0]}, wants {req.specifier}"
    assert all(hashes >= 1 for _version, hashes in locked.values()), "a pin without --hash: pip --require-hashes fails"


def test_the_lock_holds_no_test_or_lint_tools() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    dev = {canonicalize_name(Requirement(s).name) for s in project["optional-dependencies"]["dev"]}
    assert dev and not dev & set(_locked())
