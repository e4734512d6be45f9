"""The extra-seeds grid (conf/extra_seeds): training seeds 3 and 4 on the reported data, where
conf/base's consistency scale was chosen:
``kedro run --env extra_seeds --pipelines comparison_extra_seeds``
(its shape: ``settings.COMPARISON_GRIDS``)."""

from kedro.pipeline import Pipeline

from mkdseg.pipelines.comparison.pipeline import grid_pipeline


def create_pipeline() -> Pipeline:
    return grid_pipeline("comparison_extra_seeds")
