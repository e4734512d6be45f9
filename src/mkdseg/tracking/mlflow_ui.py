"""Print the MLflow UI address that opens experiment ``mkdseg`` on its model-training view.

MLflow 3.17's UI reads the experiment's ``mlflow.experimentKind`` tag (which the tracking
hook sets) only where its *GenAI / Model training* switch is disabled, and 3.17.2 enables it:
it opens every experiment on the view of that sidebar switch, which each browser remembers and which
starts on *GenAI* (traces, token usage, an assistant). The address printed here selects the
training view with the UI's ``workflowType`` query parameter; clicking *Model training* once
makes the browser remember it. ``make mlflow-ui`` prints it before starting the UI.

    python -m mkdseg.tracking.mlflow_ui [--tracking-uri URI] [--experiment NAME] [--base-url URL]
"""

from __future__ import annotations

import argparse

from mkdseg.catalog.paths import tracking_uri

# As conf/base/mlflow.yml, relative to the project root.
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "mkdseg"
DEFAULT_BASE_URL = "http://127.0.0.1:5000"
TRAINING_VIEW_QUERY = "workflowType=machine_learning"


def training_view_url(base_url: str, experiment_id: str | None) -> str:
    """The UI address of an experiment's runs (or of the experiment list) on the training view."""
    page = f"experiments/{experiment_id}" if experiment_id is not None else "experiments"
    return f"{base_url.rstrip('/')}/#/{page}?{TRAINING_VIEW_QUERY}"


def run_url(base_url: str, experiment_id: str, run_id: str) -> str:
    """The UI address of one run's page, on the training view (as ``training_view_url``)."""
    page = f"experiments/{experiment_id}/runs/{run_id}"
    return f"{base_url.rstrip('/')}/#/{page}?{TRAINING_VIEW_QUERY}"


def experiment_id(uri: str, name: str) -> str | None:
    """The id of experiment ``name`` in the store at ``uri``, None if it does not exist yet."""
    from mlflow.tracking import MlflowClient

    experiment = MlflowClient(tracking_uri=uri).get_experiment_by_name(name)
    return None if experiment is None else experiment.experiment_id


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print the MLflow UI address of the training view")
    parser.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI)
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT)
    parser.add_argument("--base-url", default=DEFAULT_BASE_URL)
    args = parser.parse_args(argv)
    found = experiment_id(tracking_uri(args.tracking_uri), args.experiment)
    print(
        f"MLflow UI, {args.experiment} runs on the training view: "
        f"{training_view_url(args.base_url, found)}"
    )
    if found is None:
        print(f"(no experiment {args.experiment!r} in the store yet: `make run` creates it)")


if __name__ == "__main__":
    main()
