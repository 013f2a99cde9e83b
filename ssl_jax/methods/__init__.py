"""Methods: one file each under `ssl_jax/methods/<family>/`, listed in `METHODS` (config `method` -> module).

A method module declares everything the one trainer needs, and nothing in the trainer names a family:

| name | what |
| --- | --- |
| `config() -> ConfigDict` | its own config section (`config.<method>`) with defaults; the common base holds only what every run has |
| `SUITES` | the evaluation suites that judge it (`ssl_jax.evaluation.suites`): `representation`, `accuracy`, `bags`, `retrieval` |
| `stream(config) -> spec` | the data a step needs (`ssl_jax.data.streams`): `Images`, `LabelledUnlabelled`, `Bags`, `FolderBags`, `ClassBalanced`, `SourceTarget` |
| `make(config, info) -> m` | its static parts (modules, optimizer, views), a frozen dataclass closed over by the jitted step |
| `init(m, rng, pretrained=None) -> TrainState` | a fresh state (`common.TrainState`), with another run's parts loaded when `init_from` is set |
| `step(m, state, batch) -> (state, metrics)` | one pure update on a global batch; metrics are scalars named `train/...` |
| `predict(m, state, inputs) -> dict` | what the suites read: `features`, `logits` (`ema_logits`), `bag_logits` (`attention`) or `embeddings` |

Adding a method is one file and one line in `METHODS`, plus its configs under `configs/<family>/`. The
shared pieces (`TrainState`, `apply`, `gradient_step`, `ema`, `cosine_ema_schedule`, `online_probe`) are in
`ssl_jax.methods.common`; the image classifier with an EMA model shared by the semi-supervised methods is
`ssl_jax.methods.classifier`.
"""

from ssl_jax.methods.metric import siamese, triplet
from ssl_jax.methods.mil import mil
from ssl_jax.methods.semi import (co_training, fixmatch, flexmatch, label_propagation, mean_teacher, mixmatch,
                                  pi_model, pseudo_label, self_training, supervised, uda, vat)
from ssl_jax.methods.ssl import (autoencoder, barlow_twins, beit, byol, contractive_autoencoder, denoising_autoencoder,
                                 dino, jigsaw, mae, moco_v2, moco_v3, nnclr, pirl, rotnet, simclr, simsiam, supcon,
                                 swav, vae, vicreg, vq_vae)
from ssl_jax.methods.transfer import dann, finetune

METHODS = {
    # self-supervised: judged by a linear probe and kNN on frozen features
    "simclr": simclr,
    "byol": byol,
    "simsiam": simsiam,
    "moco_v2": moco_v2,
    "barlow_twins": barlow_twins,
    "vicreg": vicreg,
    "supcon": supcon,
    "nnclr": nnclr,
    "swav": swav,
    "dino": dino,
    "moco_v3": moco_v3,
    # pretext tasks, masked modelling and auto-encoders: judged the same way
    "rotnet": rotnet,
    "autoencoder": autoencoder,
    "denoising_autoencoder": denoising_autoencoder,
    "contractive_autoencoder": contractive_autoencoder,
    "vae": vae,
    "mae": mae,
    "jigsaw": jigsaw,
    "pirl": pirl,
    "vq_vae": vq_vae,
    "beit": beit,
    # semi-supervised: judged by test accuracy at a label budget
    "fixmatch": fixmatch,
    "supervised": supervised,
    "self_training": self_training,
    "co_training": co_training,
    "pseudo_label": pseudo_label,
    "mean_teacher": mean_teacher,
    "pi_model": pi_model,
    "vat": vat,
    "uda": uda,
    "mixmatch": mixmatch,
    "flexmatch": flexmatch,
    "label_propagation": label_propagation,
    # multiple-instance learning: judged by bag AUC
    "mil": mil,
    # metric learning: judged by Recall@K on held-out classes
    "triplet": triplet,
    "siamese": siamese,
    # transfer: a pretrained encoder fine-tuned on few labels, and domain adaptation (judged by accuracy)
    "finetune": finetune,
    "dann": dann,
}
