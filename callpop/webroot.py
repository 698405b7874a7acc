"""Where the desk's templates and static files are.

In a source checkout they are the repository's top-level ``web/``; a wheel built from it
carries them inside the package as ``callpop/web/`` (setup.py), since an installed
package has no repository around it. The packaged copy wins when it is there.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["WEB_ROOT", "web_root"]


def web_root() -> Path:
    packaged = Path(__file__).resolve().parent / "web"
    if (packaged / "templates").is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "web"


WEB_ROOT = web_root()
