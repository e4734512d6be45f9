"""Known third-party warnings are silenced by module and message; everything else still shows."""

from __future__ import annotations

import sys
import warnings

import pytest

from mkdseg.warning_filters import KNOWN_THIRD_PARTY_WARNINGS, silence_known_third_party_warnings

MLFLOW_NOTICE = (
    "\x1b[33mAdd type hints to the `predict` method to enable data validation and automatic "
    "signature inference during model logging.\x1b[0m"
)
OMEGACONF = "register_new_resolver() is deprecated and will be removed in a future release."
FASTAPI = (
    "ORJSONResponse is deprecated, FastAPI now serializes data directly to JSON bytes via Pydantic"
)


def _shown(message: str, module: str, category: type[Warning] = UserWarning) -> bool:
    """Whether a warning with this message, attributed to ``module``, gets through the filters."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_known_third_party_warnings()
        warnings.warn_explicit(
            message, category, f"{module.replace('.', '/')}.py", 1, module=module
        )
    return bool(caught)


class _FastAPIDeprecationWarning(UserWarning):
    """Stands for fastapi.exceptions.FastAPIDeprecationWarning (a UserWarning)."""


@pytest.mark.parametrize(
    ("message", "module", "category"),
    [
        (MLFLOW_NOTICE, "mlflow.pyfunc.utils.data_validation", UserWarning),
        (OMEGACONF, "kedro.config.omegaconf_config", UserWarning),
        (OMEGACONF, "kedro_mlflow.framework.hooks.mlflow_hook", UserWarning),
        (FASTAPI, "kedro_viz.api.rest.responses.pipelines", _FastAPIDeprecationWarning),
    ],
)
def test_the_known_third_party_warnings_are_silenced(
    message: str, module: str, category: type[Warning]
) -> None:
    assert not _shown(message, module, category)


@pytest.mark.parametrize(
    ("message", "module"),
    [
        (OMEGACONF, "mkdseg.settings"),  # the same text from the project: shown
        # another message there: shown
        ("register_new_resolver() got a bad name", "kedro.config.omegaconf_config"),
        ("The given NumPy array is not writable", "mkdseg.core.prediction.folder"),
        (MLFLOW_NOTICE, "mlflow.pytorch"),
    ],
)
def test_anything_else_still_shows(message: str, module: str) -> None:
    assert _shown(message, module)


def test_every_filter_says_why() -> None:
    assert all(known.why and known.module and known.message for known in KNOWN_THIRD_PARTY_WARNINGS)


def test_a_notice_shown_once_from_inside_a_library_context_is_dropped_on_import(
    tmp_path, monkeypatch
) -> None:
    """MLflow shows its notice inside its own catch_warnings with a "once" filter, out of reach of
    any filter; importing the module that emits it through ``import_without`` drops just that
    one."""
    from mkdseg.warning_filters import import_without

    (tmp_path / "noisy_library.py").write_text(
        "import warnings\n"
        "with warnings.catch_warnings():\n"
        "    warnings.simplefilter('once', category=UserWarning)\n"
        f"    warnings.warn({MLFLOW_NOTICE!r}, UserWarning)\n"
        "    warnings.warn('something the user should see', UserWarning)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        import_without("noisy_library", KNOWN_THIRD_PARTY_WARNINGS[0])
    sys.modules.pop("noisy_library", None)
    assert [str(w.message) for w in shown] == ["something the user should see"]
