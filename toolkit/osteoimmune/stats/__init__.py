"""Statistics on sample-level tables: association models, multiple testing, meta-analysis.

Pure numpy/pandas/scipy/statsmodels; nothing here knows about AnnData.
"""

from ._meta import combine
from ._models import (
    covariate_terms,
    logit_test,
    mixedlm_test,
    ols_many,
    ols_test,
    permutation_test,
    spearman_test,
)
from ._multitest import bh_adjust, bh_by_family
from ._phenotypes import PhenotypeDesign, prepare_phenotype

__all__ = [
    "PhenotypeDesign",
    "bh_adjust",
    "bh_by_family",
    "combine",
    "covariate_terms",
    "logit_test",
    "mixedlm_test",
    "ols_many",
    "ols_test",
    "permutation_test",
    "prepare_phenotype",
    "spearman_test",
]
