"""Known third-party warnings that every ``kedro run`` / ``kedro viz`` prints, silenced narrowly.

They filled the first screen of a run before the project logged anything, and none is
something a user of this project can act on. Each filter matches the module the warning is
attributed to *and* the start of its message, so the same text from anywhere else, any other
warning of these libraries and every warning of this project's own still show. Installed
from ``settings.py``, which Kedro imports before its plugins and config loader run. Review
the list when upgrading MLflow, OmegaConf, kedro-mlflow or kedro-viz: a filter whose
warning is gone is harmless, but one that is no longer needed should go.
"""

from __future__ import annotations

import importlib
import re
import warnings
from dataclasses import dataclass

_OMEGACONF_RENAME = r"register_new_resolver\(\) is deprecated"


@dataclass(frozen=True)
class KnownWarning:
    """A warning to ignore: where it is attributed (module regex) and how its message starts."""

    module: str
    message: str
    category: type[Warning]
    why: str


KNOWN_THIRD_PARTY_WARNINGS = (
    KnownWarning(
        r"mlflow\.pyfunc\.utils\.data_validation$",
        r"(\x1b\[[0-9;]*m)?Add type hints to the `predict` method",
        UserWarning,
        "MLflow 3's notice for a PythonModel without type hints: kedro-mlflow's pipeline "
        "model, defined when the plugin is imported; this project logs no PythonModel",
    ),
    KnownWarning(
        r"kedro\.config\.omegaconf_config$",
        _OMEGACONF_RENAME,
        UserWarning,
        "OmegaConf renamed register_new_resolver; Kedro's config loader still calls the old name",
    ),
    KnownWarning(
        r"kedro_mlflow\.framework\.hooks\.mlflow_hook$",
        _OMEGACONF_RENAME,
        UserWarning,
        "the same rename, in kedro-mlflow's hook",
    ),
    KnownWarning(
        r"kedro_viz\.",
        r"ORJSONResponse is deprecated",
        UserWarning,
        "FastAPI's deprecation of a response class kedro-viz's API still imports",
    ),
)


# MLflow shows its pyfunc notice from inside its own ``catch_warnings`` with a "once" filter
# for every UserWarning (``mlflow.utils.annotations.filter_user_warnings_once``), which a
# filter installed here cannot override. So the module whose import emits it is imported
# here first, with that one notice dropped; being "once", MLflow does not show it again.
QUIET_IMPORTS = (("kedro_mlflow.mlflow", KNOWN_THIRD_PARTY_WARNINGS[0]),)


def import_without(module: str, known: KnownWarning) -> None:
    """Import ``module`` now, dropping the ``known`` warning its import emits; any other warning
    of the import is shown as usual."""
    with warnings.catch_warnings(record=True) as caught:
        importlib.import_module(module)
    pattern = re.compile(known.message, re.IGNORECASE)
    for message in caught:
        if issubclass(message.category, known.category) and pattern.match(str(message.message)):
            continue
        warnings.showwarning(message.message, message.category, message.filename, message.lineno)


def silence_known_third_party_warnings() -> None:
    """Ignore exactly the warnings of ``KNOWN_THIRD_PARTY_WARNINGS`` in this process."""
    for known in KNOWN_THIRD_PARTY_WARNINGS:
        warnings.filterwarnings(
            "ignore", message=known.message, category=known.category, module=known.module
        )
    for module, known in QUIET_IMPORTS:
        import_without(module, known)
