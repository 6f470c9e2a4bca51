"""End to end on data with a known answer: planted atypical images that only f trains on must rank among the most
memorized candidates (SSLMem at the final layer). Trains a small real SimCLR pair (about a minute on 2 cores)."""
import torch
from scipy import stats
from memloc.data import synthetic, Split
from memloc.train import train_pair
from memloc.sslmem import sslmem
from memloc.layermem import top_least

def planted_split(data, n_candidates, n_shared, n_independent, seed=0):
    "All planted outliers among the candidates, the rest of every set typical images (a canary experiment)."
    typical = torch.ones(len(data), dtype=torch.bool); typical[data.outliers] = False
    t = typical.nonzero().flatten()[torch.randperm(int(typical.sum()), generator=torch.Generator().manual_seed(seed))]
    n_c = n_candidates - len(data.outliers)
    return Split(shared=t[n_c:n_c + n_shared].sort().values, candidates=torch.cat([data.outliers, t[:n_c]]).sort().values,
                 independent=t[n_c + n_shared:n_c + n_shared + n_independent].sort().values, n_total=len(data))

def test_planted_outliers_rank_among_the_most_memorized(runs):
    data = synthetic(n=400, n_outliers=10, seed=1)
    split = planted_split(data, 100, 200, 100, seed=1)
    assert torch.isin(data.outliers, split.candidates).all() and not torch.isin(data.outliers, split.g_train).any()
    f, g = train_pair(data, split, epochs=100, seed=1, encoder_kw=dict(width=0.25), progress=False)
    s = sslmem(f, g, data.x[split.candidates], [-1], n_aug=10)['layer3_residual2']         # (100,)
    planted = torch.isin(split.candidates, data.outliers)
    top10 = top_least(s, 10)[0]
    hits = int(planted[top10].sum())
    rank = torch.empty(len(s), dtype=torch.long); rank[torch.sort(s, descending=True).indices] = torch.arange(len(s))
    p = stats.mannwhitneyu(s[planted].numpy(), s[~planted].numpy(), alternative='greater').pvalue
    print(f"planted in the top 10: {hits}/10; planted ranks {sorted(rank[planted].tolist())}; Mann-Whitney p = {p:.2g}")
    assert hits >= 3, hits                                     # chance: 1 of 10
    assert rank[planted].float().mean() < 30                   # chance: 49.5
    assert p < 0.01, p
