"""The `pdf-ensemble` challenger: a deep ensemble of the `pdf` challenger (Lakshminarayanan et al. 2017).

M members (``TrainConfig.ensemble_members``), each the `pdf` challenger trained by its own builder
(:func:`astrospect.models.train.fit_pdf_cnn`) with its own seed: its own initial weights, shuffling and
augmentation; nothing else differs. The ensemble's PDF is the mean of its members' PDFs, a mixture: where the
members disagree it is wider than any of them, which is the uncertainty a single network cannot see in
itself.

One choice is made, on the validation split only: whether the mixture averages the members as each was
calibrated on validation (a temperature and a shift each, :mod:`astrospect.models.calibration`) or as they
came out of training. Averaging widens PDFs, so members calibrated one by one can make a mixture that is too
wide, while over-confident raw members can average to a calibrated one; the mixture whose validation PIT is
the more uniform (lower Cramér-von Mises statistic) is kept, and both statistics are logged.

The saved model is one Keras model, cutouts and E(B-V) in, the members side by side inside it and their
mean PDF out: served, registered and predicted like the `pdf` model (:func:`astrospect.models.cnn.pdf_bins`
finds the members' bins).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import numpy.typing as npt
from keras import layers

from astrospect.data.shards import CUTOUTS_INPUT, EBV_INPUT
from astrospect.models import progress
from astrospect.models.registry import Trained
from astrospect.settings import CUTOUT_SIZE, N_BANDS, get_logger

if TYPE_CHECKING:
    from astrospect.data.dataset import Splits
    from astrospect.models.progress import TrainingObserver
    from astrospect.models.registry import Challenger, TrainConfig
    from astrospect.pdf.bins import RedshiftBins

log = get_logger(__name__)
MEMBER_CHALLENGER = "pdf"  # the registry entry each member is


def member_name(index: int) -> str:
    """A member's name: its nested model's, and the suffix of its curves on the ensemble's run."""
    return f"member{index}"


def member_seeds(config: TrainConfig) -> list[int]:
    """One seed per member, consecutive from the session's: member 0 is the `pdf` challenger itself."""
    if config.ensemble_members < 2:
        raise ValueError(
            f"TrainConfig.ensemble_members: an ensemble needs at least 2 members, got {config.ensemble_members}"
            " (1 member is the `pdf` challenger)"
        )
    return [config.seed + k for k in range(config.ensemble_members)]


class MemberReport:
    """A member's training as its ensemble's run hears it: each epoch's curves under ``<name>_memberK``;
    the parameters and input example from member 0 only (the members differ only in their seed, logged as
    ``member_seeds`` with the ensemble's parameters)."""

    def __init__(self, observer: TrainingObserver, index: int) -> None:
        self.observer = observer
        self.index = index

    def training_started(self, params: Mapping[str, Any], input_example: npt.NDArray[np.float32]) -> None:
        if self.index == 0:
            self.observer.training_started(params, input_example)

    def epoch_ended(self, epoch: int, metrics: Mapping[str, float]) -> None:
        suffix = member_name(self.index)
        self.observer.epoch_ended(epoch, {f"{key}_{suffix}": value for key, value in metrics.items()})


def build_ensemble(members: Sequence[keras.Model], name: str = "pdf_ensemble") -> keras.Model:
    """One model: the members' PDFs for the same cutouts and E(B-V), averaged bin by bin."""
    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least 2 member models, got {len(members)}")
    cutouts = keras.Input(shape=(CUTOUT_SIZE, CUTOUT_SIZE, N_BANDS), name=CUTOUTS_INPUT, dtype="float32")
    ebv = keras.Input(shape=(), name=EBV_INPUT, dtype="float32")
    inputs = {CUTOUTS_INPUT: cutouts, EBV_INPUT: ebv}
    pdfs = []
    for k, member in enumerate(members):
        if {tensor.name for tensor in member.inputs} != set(inputs):
            raise ValueError(
                f"ensemble member {k} ({member.name!r}) takes {[t.name for t in member.inputs]}; "
                f"members must take {sorted(inputs)}"
            )
        nested = keras.Model(member.input, member.output, name=member_name(k))
        pdfs.append(nested(inputs))
    mean = layers.Average(name="pdf_mean", dtype="float32")(pdfs)
    return keras.Model(inputs, mean, name=name)


def _validation_pit_cvm(
    members: Sequence[Trained], splits: Splits, bins: RedshiftBins
) -> tuple[float, float]:
    """The validation PIT CvM of the mixture of calibrated members and of the mixture of raw members."""
    from astrospect.data.dataset import iter_selected_cutouts
    from astrospect.models.calibration import Calibration, bin_logits, calibrated_pdfs, model_calibration
    from astrospect.pdf.bins import RedshiftPdfs
    from astrospect.pdf.metrics import pit_statistics, pit_values

    calibrated_parts, raw_parts, z_parts = [], [], []
    for chunk in iter_selected_cutouts(splits.val):
        calibrated = np.zeros((len(chunk.images), bins.n))
        raw = np.zeros((len(chunk.images), bins.n))
        for member in members:
            if member.keras_model is None:
                raise ValueError(f"ensemble member {member.challenger.name!r} has no Keras model")
            logits = bin_logits(member.keras_model, chunk.images, chunk.ebv)
            calibrated += calibrated_pdfs(logits, bins, model_calibration(member.keras_model))
            raw += calibrated_pdfs(logits, bins, Calibration())
        calibrated_parts.append(calibrated / len(members))
        raw_parts.append(raw / len(members))
        z_parts.append(np.asarray(chunk.redshift, np.float64))
    z = np.concatenate(z_parts)
    return tuple(  # type: ignore[return-value]
        pit_statistics(pit_values(RedshiftPdfs(np.concatenate(parts), bins), z))["pit_cvm"]
        for parts in (calibrated_parts, raw_parts)
    )


def _uncalibrated_copy(model: keras.Model) -> keras.Model:
    from astrospect.models.calibration import Calibration, apply_calibration

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    apply_calibration(copy, Calibration())
    return copy


def fit_pdf_ensemble(challenger: Challenger, splits: Splits, config: TrainConfig) -> Trained:
    """The registry's builder for `pdf-ensemble` (module docstring)."""
    from astrospect.models import registry
    from astrospect.models.predict import predict_pdf
    from astrospect.models.train import fit_pdf_cnn

    seeds = member_seeds(config)
    member_challenger = registry.get(MEMBER_CHALLENGER)
    members: list[Trained] = []
    for k, seed in enumerate(seeds):
        log.info("%s: training %s of %d (seed %d)", challenger.name, member_name(k), len(seeds), seed)
        member_config = replace(config, seed=seed, out_dir=config.out_dir / member_name(k))
        with progress.relayed(partial(MemberReport, index=k)):
            members.append(fit_pdf_cnn(member_challenger, splits, member_config))
    bins = members[0].bins
    if bins is None or any(member.bins != bins for member in members):
        raise ValueError(f"{challenger.name}: the members' PDFs are not on the same bins")
    val_cvm_calibrated, val_cvm_raw = _validation_pit_cvm(members, splits, bins)
    use_calibrated = val_cvm_calibrated <= val_cvm_raw
    log.info(
        "%s: validation PIT CvM of the mixture %.4f with calibrated members, %.4f with raw ones: keeping %s",
        challenger.name,
        val_cvm_calibrated,
        val_cvm_raw,
        "calibrated" if use_calibrated else "raw",
    )
    calibrated_models = [member.keras_model for member in members if member.keras_model is not None]
    raw_models = [_uncalibrated_copy(model) for model in calibrated_models]
    model = build_ensemble(calibrated_models if use_calibrated else raw_models)
    uncalibrated = build_ensemble(raw_models, name="pdf_ensemble_uncalibrated")
    history = {
        f"{key}_{member_name(k)}": values
        for k, member in enumerate(members)
        for key, values in member.history.items()
    }
    epochs_run = [int(member.params["epochs_run"]) for member in members]
    params = members[0].params | {
        "ensemble_members": len(members),
        "member_seeds": ",".join(str(seed) for seed in seeds),
        "member_epochs_run": ",".join(str(n) for n in epochs_run),
        "epochs_run": max(epochs_run),
        "members_calibrated": use_calibrated,
    }
    rates = [member.run_metrics["images_per_second"] for member in members]
    run_metrics = {
        # every training image goes through M trainings: the ensemble learns from 1 / sum(1 / rate) a second
        "images_per_second": 1.0 / sum(1.0 / rate for rate in rates) if all(rates) else 0.0,
        "val_pit_cvm_calibrated_members": val_cvm_calibrated,
        "val_pit_cvm_raw_members": val_cvm_raw,
    }
    return Trained(
        challenger=challenger,
        predict=None,  # its redshift is the mixture's POINT_ESTIMATE
        params=params,
        n_train=members[0].n_train,
        n_val=members[0].n_val,
        history=history,
        run_metrics=run_metrics,
        keras_model=model,
        input_example=members[0].input_example,
        model_path=_save(model, config, params, history),
        predict_pdf=lambda cutouts: predict_pdf(model, cutouts.images, cutouts.ebv, bins),
        uncalibrated_pdf=lambda cutouts: predict_pdf(uncalibrated, cutouts.images, cutouts.ebv, bins),
        bins=bins,
    )


def _save(
    model: keras.Model, config: TrainConfig, params: Mapping[str, Any], history: Mapping[str, list[float]]
) -> Path:
    """``out_dir/model.keras`` (the members inside), its history and parameters; never over a saved model."""
    config.out_dir.mkdir(parents=True, exist_ok=True)
    model_path = config.out_dir / "model.keras"
    if model_path.exists():
        raise FileExistsError(f"{model_path}: a model is already saved here; choose a new --out folder")
    model.save(model_path)
    (config.out_dir / "history.json").write_text(json.dumps(dict(history), indent=1))
    (config.out_dir / "train_config.json").write_text(json.dumps(dict(params), indent=1, default=str))
    log.info("saved %s", model_path)
    return model_path
