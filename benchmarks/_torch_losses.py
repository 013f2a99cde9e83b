"""PyTorch reference implementations used by `benchmarks/losses.py`.

Each function is written the way the popular PyTorch code writes the loss (the source is named in its
docstring), eager and unfused, with the *same formula* as the ssl_jax loss it is compared with: the benchmark
checks that the two agree (value and gradient) before it times anything. Where a library's formula differs
from ours only by a convention (a mean over pairs instead of anchors, KL instead of cross-entropy), the
reference follows our convention and the docstring says what was changed; the cost is the same.

Every function returns the scalar that is differentiated (the mean of the per-example losses where the
ssl_jax loss is per-example).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


# ----------------------------------------------------------------------------------------------------------
# Contrastive.
# ----------------------------------------------------------------------------------------------------------


def ntxent(out0: torch.Tensor, out1: torch.Tensor, *, temperature: float) -> torch.Tensor:
  """lightly's `NTXentLoss.forward` without a memory bank, on one process (lightly/loss/ntx_ent_loss.py)."""
  batch_size = out0.shape[0]
  out0 = F.normalize(out0, dim=1)
  out1 = F.normalize(out1, dim=1)
  logits_00 = torch.einsum("nc,mc->nm", out0, out0) / temperature
  logits_01 = torch.einsum("nc,mc->nm", out0, out1) / temperature
  logits_10 = torch.einsum("nc,mc->nm", out1, out0) / temperature
  logits_11 = torch.einsum("nc,mc->nm", out1, out1) / temperature
  diag_mask = torch.eye(batch_size, device=out0.device, dtype=torch.bool)
  logits_00 = logits_00[~diag_mask].view(batch_size, -1)
  logits_11 = logits_11[~diag_mask].view(batch_size, -1)
  logits_0100 = torch.cat([logits_01, logits_00], dim=1)
  logits_1011 = torch.cat([logits_10, logits_11], dim=1)
  logits = torch.cat([logits_0100, logits_1011], dim=0)
  labels = torch.arange(batch_size, device=out0.device, dtype=torch.long).repeat(2)
  return F.cross_entropy(logits, labels)


def info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, *, temperature: float) -> torch.Tensor:
  """MoCo v2's `MoCo.forward` loss (facebookresearch/moco, moco/builder.py), the queue stored [K, d].

  The queue holds L2-normalised keys, as MoCo enqueues them; ssl_jax normalises it again inside the loss.
  """
  q = F.normalize(q, dim=1)
  k = F.normalize(k, dim=1)
  l_pos = torch.einsum("nc,nc->n", q, k).unsqueeze(-1)
  l_neg = torch.einsum("nc,kc->nk", q, queue)
  logits = torch.cat([l_pos, l_neg], dim=1) / temperature
  labels = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
  return F.cross_entropy(logits, labels)


def supcon(features: torch.Tensor, labels: torch.Tensor, *, temperature: float) -> torch.Tensor:
  """`SupConLoss` of Khosla et al. (HobbitLong/SupContrast, losses.py), one view, contrast_mode='all'.

  `base_temperature = temperature` (the factor t / base_t is 1, as in ssl_jax); the features are
  L2-normalised first, as the authors' `SupConResNet.forward` does.
  """
  features = F.normalize(features, dim=1)
  batch_size = features.shape[0]
  labels = labels.contiguous().view(-1, 1)
  mask = torch.eq(labels, labels.T).float()
  anchor_dot_contrast = torch.div(torch.matmul(features, features.T), temperature)
  logits_max, _ = torch.max(anchor_dot_contrast, dim=1, keepdim=True)
  logits = anchor_dot_contrast - logits_max.detach()
  logits_mask = torch.scatter(torch.ones_like(mask), 1, torch.arange(batch_size).view(-1, 1), 0)
  mask = mask * logits_mask
  exp_logits = torch.exp(logits) * logits_mask
  log_prob = logits - torch.log(exp_logits.sum(1, keepdim=True))
  mask_pos_pairs = mask.sum(1)
  mask_pos_pairs = torch.where(mask_pos_pairs < 1e-6, 1, mask_pos_pairs)
  mean_log_prob_pos = (mask * log_prob).sum(1) / mask_pos_pairs
  return (-mean_log_prob_pos).mean()


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
  """SimSiam's `D(p, z)` (facebookresearch/simsiam): -cosine_similarity(p, z.detach())."""
  return -F.cosine_similarity(p, z.detach(), dim=-1).mean()


# ----------------------------------------------------------------------------------------------------------
# Redundancy reduction.
# ----------------------------------------------------------------------------------------------------------


def off_diagonal(x: torch.Tensor) -> torch.Tensor:
  """Flattened view of the off-diagonal elements of a square matrix (Barlow Twins / VICReg code)."""
  n, m = x.shape
  assert n == m
  return x.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def barlow_twins(z1: torch.Tensor, z2: torch.Tensor, *, lambd: float) -> torch.Tensor:
  """`BarlowTwins.forward` (facebookresearch/barlowtwins, main.py): BatchNorm1d(affine=False), training mode."""
  batch_size = z1.shape[0]
  bn = lambda z: F.batch_norm(z, None, None, training=True, eps=1e-5)  # nn.BatchNorm1d(affine=False)
  c = bn(z1).T @ bn(z2)
  c = c.div(batch_size)
  on_diag = torch.diagonal(c).add(-1).pow(2).sum()
  off_diag = off_diagonal(c).pow(2).sum()
  return on_diag + lambd * off_diag


def vicreg(x: torch.Tensor, y: torch.Tensor, *, sim_coeff: float = 25.0, std_coeff: float = 25.0,
           cov_coeff: float = 1.0) -> torch.Tensor:
  """`VICReg.forward` (facebookresearch/vicreg, main_vicreg.py), single process."""
  batch_size, num_features = x.shape
  repr_loss = F.mse_loss(x, y)
  x = x - x.mean(dim=0)
  y = y - y.mean(dim=0)
  std_x = torch.sqrt(x.var(dim=0) + 0.0001)
  std_y = torch.sqrt(y.var(dim=0) + 0.0001)
  std_loss = torch.mean(F.relu(1 - std_x)) / 2 + torch.mean(F.relu(1 - std_y)) / 2
  cov_x = (x.T @ x) / (batch_size - 1)
  cov_y = (y.T @ y) / (batch_size - 1)
  cov_loss = (off_diagonal(cov_x).pow(2).sum().div(num_features)
              + off_diagonal(cov_y).pow(2).sum().div(num_features))
  return sim_coeff * repr_loss + std_coeff * std_loss + cov_coeff * cov_loss


# ----------------------------------------------------------------------------------------------------------
# Clustering / self-distillation.
# ----------------------------------------------------------------------------------------------------------


@torch.no_grad()
def distributed_sinkhorn(out: torch.Tensor, *, epsilon: float, sinkhorn_iterations: int) -> torch.Tensor:
  """SwAV's `distributed_sinkhorn` (facebookresearch/swav, main_swav.py), on one process."""
  Q = torch.exp(out / epsilon).t()  # Q is K-by-B for consistency with notations from the paper
  B = Q.shape[1]
  K = Q.shape[0]
  sum_Q = torch.sum(Q)
  Q /= sum_Q
  for _ in range(sinkhorn_iterations):
    sum_of_rows = torch.sum(Q, dim=1, keepdim=True)
    Q /= sum_of_rows
    Q /= K
    Q /= torch.sum(Q, dim=0, keepdim=True)
    Q /= B
  Q *= B  # the columns must sum to 1 so that Q is an assignment
  return Q.t()


def swav(output: torch.Tensor, *, bs: int, nmb_crops: int, crops_for_assign=(0, 1), temperature: float = 0.1,
         epsilon: float = 0.05, sinkhorn_iterations: int = 3) -> torch.Tensor:
  """The SwAV loss of `train()` in facebookresearch/swav main_swav.py (no queue); `output` is [V * bs, K]."""
  loss = 0
  for crop_id in crops_for_assign:
    with torch.no_grad():
      out = output[bs * crop_id: bs * (crop_id + 1)].detach()
      q = distributed_sinkhorn(out, epsilon=epsilon, sinkhorn_iterations=sinkhorn_iterations)[-bs:]
    subloss = 0
    for v in [v for v in range(nmb_crops) if v != crop_id]:
      x = output[bs * v: bs * (v + 1)] / temperature
      subloss -= torch.mean(torch.sum(q * F.log_softmax(x, dim=1), dim=1))
    loss += subloss / (nmb_crops - 1)
  return loss / len(crops_for_assign)


def dino(student_output: torch.Tensor, teacher_output: torch.Tensor, center: torch.Tensor, *, ncrops: int,
         student_temp: float = 0.1, teacher_temp: float = 0.04) -> torch.Tensor:
  """`DINOLoss.forward` (facebookresearch/dino, main_dino.py) without the center update; outputs [crops * b, K]."""
  student_out = student_output / student_temp
  student_out = student_out.chunk(ncrops)
  teacher_out = F.softmax((teacher_output - center) / teacher_temp, dim=-1)
  teacher_out = teacher_out.detach().chunk(2)
  total_loss = 0
  n_loss_terms = 0
  for iq, q in enumerate(teacher_out):
    for v in range(len(student_out)):
      if v == iq:
        continue
      loss = torch.sum(-q * F.log_softmax(student_out[v], dim=-1), dim=-1)
      total_loss += loss.mean()
      n_loss_terms += 1
  return total_loss / n_loss_terms


# ----------------------------------------------------------------------------------------------------------
# Metric learning.
# ----------------------------------------------------------------------------------------------------------


def contrastive_margin(x1: torch.Tensor, x2: torch.Tensor, y: torch.Tensor, *, margin: float) -> torch.Tensor:
  """Hadsell et al.'s contrastive loss as PyTorch siamese code writes it (y = 1: dissimilar pair)."""
  d = F.pairwise_distance(x1, x2)
  loss = 0.5 * ((1 - y) * d.pow(2) + y * torch.clamp(margin - d, min=0.0).pow(2))
  return loss.mean()


def triplet_margin(a: torch.Tensor, p: torch.Tensor, n: torch.Tensor, *, margin: float) -> torch.Tensor:
  """`torch.nn.functional.triplet_margin_loss` (eps=1e-6 added to the difference, not under the root)."""
  return F.triplet_margin_loss(a, p, n, margin=margin, p=2, reduction="mean")


def _pairwise_distances(embeddings: torch.Tensor, squared: bool = False) -> torch.Tensor:
  """Pairwise Euclidean distances, the popular PyTorch port of omoindrot's TF triplet-loss code
  (NegatioN/OnlineMiningTripletLoss, online_triplet_loss.py)."""
  dot_product = torch.matmul(embeddings, embeddings.t())
  square_norm = torch.diag(dot_product)
  distances = square_norm.unsqueeze(0) - 2.0 * dot_product + square_norm.unsqueeze(1)
  distances = distances.clamp(min=0)
  if not squared:
    mask = distances.eq(0).float()
    distances = distances + mask * 1e-16
    distances = (1.0 - mask) * torch.sqrt(distances)
  return distances


def batch_hard_triplet(embeddings: torch.Tensor, labels: torch.Tensor, *, margin: float,
                       squared: bool = False) -> torch.Tensor:
  """`batch_hard_triplet_loss` of NegatioN/OnlineMiningTripletLoss (port of omoindrot/tensorflow-triplet-loss)."""
  pairwise_dist = _pairwise_distances(embeddings, squared=squared)
  eye = torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)
  labels_equal = labels.unsqueeze(0) == labels.unsqueeze(1)
  mask_anchor_positive = (labels_equal & ~eye).float()
  anchor_positive_dist = mask_anchor_positive * pairwise_dist
  hardest_positive_dist, _ = anchor_positive_dist.max(1, keepdim=True)
  mask_anchor_negative = (~labels_equal).float()
  max_anchor_negative_dist, _ = pairwise_dist.max(1, keepdim=True)
  anchor_negative_dist = pairwise_dist + max_anchor_negative_dist * (1.0 - mask_anchor_negative)
  hardest_negative_dist, _ = anchor_negative_dist.min(1, keepdim=True)
  triplet_loss = torch.clamp(hardest_positive_dist - hardest_negative_dist + margin, min=0.0)
  return triplet_loss.mean()


def batch_semi_hard_triplet(embeddings: torch.Tensor, labels: torch.Tensor, *, margin: float,
                            squared: bool = False) -> torch.Tensor:
  """FaceNet semi-hard mining, TF-Addons' `triplet_semihard_loss` rule, with sorted negatives.

  The usual PyTorch port of TF-Addons (tiling the [b, b] distances to [b*b, b]) needs several b^3 tensors,
  4 GiB each at b = 1024, so it cannot run at the benchmark size; this version finds the same negative per
  (anchor, positive) pair by sorting each anchor's negative distances and `torch.searchsorted`, the
  algorithm of ssl_jax (O(b^2 log b) time, O(b^2) memory). Reduction: mean over anchors of the mean over
  their positives (equal to TF-Addons' mean over pairs when every class has the same count, as here).
  """
  dist = _pairwise_distances(embeddings, squared=squared)
  b = labels.shape[0]
  eye = torch.eye(b, dtype=torch.bool, device=labels.device)
  same = labels.unsqueeze(0) == labels.unsqueeze(1)
  positive = same & ~eye
  negative = ~same
  num_pos = positive.sum(1)
  num_neg = negative.sum(1)
  inf = torch.tensor(float("inf"), dtype=dist.dtype)
  neg_sorted, _ = torch.sort(torch.where(negative, dist, inf), dim=1)
  first_farther = torch.searchsorted(neg_sorted.detach().contiguous(), dist.detach().contiguous(), right=True)
  has_semi_hard = first_farther < num_neg.unsqueeze(1)
  farthest = neg_sorted.gather(1, (num_neg - 1).clamp(min=0).unsqueeze(1))
  semi_hard = neg_sorted.gather(1, first_farther.clamp(max=b - 1))
  d_an = torch.where(has_semi_hard, semi_hard, farthest)
  pair_losses = torch.where(positive, torch.clamp(margin + dist - d_an, min=0.0), torch.zeros((), dtype=dist.dtype))
  valid = (num_pos > 0) & (num_neg > 0)
  losses = pair_losses.sum(1) / num_pos.clamp(min=1)
  return (losses * valid).sum() / valid.sum().clamp(min=1)


# ----------------------------------------------------------------------------------------------------------
# Semi-supervised (USB's formulas: microsoft/Semi-supervised-learning, semilearn/algorithms).
# ----------------------------------------------------------------------------------------------------------


def pseudo_label(logits: torch.Tensor, *, threshold: float) -> torch.Tensor:
  """USB `PseudoLabel`: confident argmax of the (detached) probabilities as a hard target."""
  probs = torch.softmax(logits.detach(), dim=-1)
  max_probs, pseudo = torch.max(probs, dim=-1)
  mask = max_probs.gt(threshold).float()
  return (F.cross_entropy(logits, pseudo, reduction="none") * mask).mean()


def fixmatch(logits_w: torch.Tensor, logits_s: torch.Tensor, *, threshold: float) -> torch.Tensor:
  """USB `FixMatch` unlabeled loss: `FixedThresholdingHook` mask + `consistency_loss(..., 'ce')`."""
  probs_w = torch.softmax(logits_w.detach(), dim=-1)
  max_probs, pseudo = torch.max(probs_w, dim=-1)
  mask = max_probs.gt(threshold).float()
  return (F.cross_entropy(logits_s, pseudo, reduction="none") * mask).mean()


def uda(logits_w: torch.Tensor, logits_s: torch.Tensor, *, temperature: float, threshold: float) -> torch.Tensor:
  """UDA's masked, sharpened consistency as the original code writes it: KL(q || p_strong) (USB uses the
  cross-entropy, which differs by the constant entropy of q; we use KL like ssl_jax and the UDA paper)."""
  logits_w = logits_w.detach()
  mask = torch.softmax(logits_w, dim=-1).max(dim=-1).values.gt(threshold).float()
  log_q = F.log_softmax(logits_w / temperature, dim=-1)
  log_p = F.log_softmax(logits_s, dim=-1)
  kl = F.kl_div(log_p, log_q, reduction="none", log_target=True).sum(-1)
  return (kl * mask).mean()


def consistency_mse(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
  """Mean Teacher's `softmax_mse_loss` (CuriousAI/mean-teacher), as a mean over classes and examples."""
  return F.mse_loss(torch.softmax(logits_a, dim=-1), torch.softmax(logits_b, dim=-1), reduction="none").mean(-1).mean()


# ----------------------------------------------------------------------------------------------------------
# Multiple-instance learning (Ilse et al.'s AttentionDeepMIL, batched with a padding mask).
# ----------------------------------------------------------------------------------------------------------


def attention_pool(features: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
  """Masked softmax attention over instances, then the weighted sum (`torch.bmm`); returns mean(pooled)."""
  weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=1)
  pooled = torch.bmm(weights.unsqueeze(1), features).squeeze(1)
  return pooled.mean()


def mil_max(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
  return values.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1).mean()


def mil_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
  m = mask.unsqueeze(-1).to(values.dtype)
  return ((values * m).sum(1) / m.sum(1).clamp(min=1)).mean()


# ----------------------------------------------------------------------------------------------------------
# Reconstruction.
# ----------------------------------------------------------------------------------------------------------


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
  """The VAE KL term as the PyTorch VAE example writes it (pytorch/examples, vae/main.py), per example."""
  return (-0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)).mean()


def masked_reconstruction(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, *,
                          norm_pix_loss: bool = True) -> torch.Tensor:
  """`MaskedAutoencoderViT.forward_loss` (facebookresearch/mae, models_mae.py) on patchified targets."""
  if norm_pix_loss:
    mean = target.mean(dim=-1, keepdim=True)
    var = target.var(dim=-1, keepdim=True)
    target = (target - mean) / (var + 1.e-6) ** .5
  loss = (pred - target) ** 2
  loss = loss.mean(dim=-1)  # [N, L], mean loss per patch
  return (loss * mask).sum() / mask.sum()  # mean loss on removed patches
