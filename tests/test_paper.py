"""The transcribed Table 1 is internally consistent: each R is M_react / M_diff to 4 digits."""

import pytest

from rdlens.paper import TABLE1


@pytest.mark.parametrize("row_id", list(TABLE1))
def test_published_R_is_the_ratio_of_the_published_means(row_id):
    row = TABLE1[row_id]
    assert row.M_react / row.M_diff == pytest.approx(row.R, abs=6e-4)
