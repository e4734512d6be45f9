"""The tabulate-free Markdown table formatter."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mkdseg.reporting.markdown import to_markdown_table


def test_to_markdown_table_formats_aligns_and_escapes() -> None:
    df = pd.DataFrame({"method": ["mkd", "a|b"], "runs": [3, 1], "mIoU_mean": [0.123456, np.nan]})
    text = to_markdown_table(df)
    assert text.splitlines() == [
        "| method | runs | mIoU_mean |",
        "| --- | ---: | ---: |",
        "| mkd | 3 | 0.1235 |",
        "| a\\|b | 1 | n/a |",
    ]
    assert to_markdown_table(pd.DataFrame()) == ""
    assert to_markdown_table(df.iloc[:0]).count("\n") == 2
