"""The wheel must carry every module and the templates (not only an editable checkout)."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_python_folder_is_a_listed_package():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(conf["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "mailer").rglob("*.py")
             if "__pycache__" not in p.parts}
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    assert conf["package-dir"]["mailer.email_templates"] == "email_templates"


def _template_package(folder: Path) -> str:
    return ".".join(["mailer", "email_templates", *folder.relative_to(ROOT / "email_templates").parts])


def test_template_folders_are_listed_packages():
    # setuptools warns at every install about a data folder missing from `packages`
    # ("Package 'mailer.email_templates.pages' is absent from the `packages` configuration").
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {_template_package(p.parent) for p in (ROOT / "email_templates").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    assert folders <= set(conf["packages"]), f"add to [tool.setuptools] packages: {sorted(folders - set(conf['packages']))}"


def test_templates_ship_with_the_package_data_globs():
    import fnmatch

    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    missing = []
    for p in (ROOT / "email_templates").rglob("*"):
        if p.is_file():
            globs = conf["package-data"].get(_template_package(p.parent), [])
            if not any(fnmatch.fnmatch(p.name, g) for g in globs):
                missing.append(p.relative_to(ROOT).as_posix())
    assert not missing, f"templates left out of the wheel: {missing}"
