"""Build hook (everything else is in pyproject.toml): the desk's pages and static files
live in the top-level ``web/`` of the repository, and a built wheel carries them as
``callpop/web/`` so that ``pip install callpop-*.whl`` serves the desk
(callpop/webroot.py finds either). The operator's documentation (docs/*.md) goes to
``share/doc/callpop/`` of the environment, where deploy/callpop.service points."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
WEB = HERE / "web"
DOCS = sorted(p.relative_to(HERE).as_posix() for p in (HERE / "docs").glob("*.md"))


class BuildPyWithWeb(build_py):  # type: ignore[misc]
    """build_py, then web/** copied to callpop/web/** in the build directory."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads web/ from the checkout
        target = Path(self.build_lib) / "callpop" / "web"
        for path in sorted(WEB.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                dest = target / path.relative_to(WEB)
                self.mkpath(str(dest.parent))
                self.copy_file(str(path), str(dest))


setup(cmdclass={"build_py": BuildPyWithWeb}, data_files=[("share/doc/callpop", DOCS)])
