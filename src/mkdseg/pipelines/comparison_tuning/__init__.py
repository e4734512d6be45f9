"""The tuning grid (conf/tuning): how conf/base's settings were chosen, on data seed 1 and
training seed 10:
``kedro run --env tuning --pipelines comparison_tuning``
(its shape: ``settings.COMPARISON_GRIDS``)."""

from kedro.pipeline import Pipeline

from mkdseg.pipelines.comparison.pipeline import grid_pipeline


def create_pipeline() -> Pipeline:
    return grid_pipeline("comparison_tuning")
