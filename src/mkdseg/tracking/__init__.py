"""MLflow tracking of a ``kedro run``, on top of kedro-mlflow's parent run.

``hooks``: the Kedro hooks that log every node run as a child MLflow run and name and describe
the parent run; ``conventions``: what a node's outputs and parameters log as (pure, no MLflow);
``run_naming``: a run's name and description from its parameters; ``mlflow_ui``: the UI address
of the runs on the model-training view (``make mlflow-ui``). The core (``mkdseg.core``) knows
nothing of this package.
"""
