"""The smoke-test grid (conf/comparison_tiny): two variants, one seed, a few iterations:
``kedro run --env comparison_tiny --pipelines comparison_tiny``
(its shape: ``settings.COMPARISON_GRIDS``)."""

from kedro.pipeline import Pipeline

from mkdseg.pipelines.comparison.pipeline import grid_pipeline


def create_pipeline() -> Pipeline:
    return grid_pipeline("comparison_tiny")
