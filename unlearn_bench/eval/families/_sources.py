"""Sources several metric families cite (not a family: ``family.shipped`` skips names starting with _)."""

SPARSE_SALUN = "Jia et al. NeurIPS'23 (Unlearn-Sparse); Fan et al. ICLR'24 (SalUn)"
LRA_NPP = "Chang et al. arXiv 2410.23693 (LRA-NPP)"
BAD_TEACHER = "Chundawat et al. AAAI'23 (Bad Teacher)"
HARNESS = "harness bookkeeping"
DRAWN = "; mean over `eval.mia_draws` seeded draws, spread in `<key>_std`"
