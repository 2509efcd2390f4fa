"""The batched gradient engine shared by the gradient-based methods.

Every gradient method of the study is a weighted sum of input gradients at points
``x_n(b) = x_b + sigma_b * eps_n`` (noise sample ``n``, SmoothGrad) moved along the straight path
``base_b + alpha_s * (x_n(b) - base_b)`` (step ``s``, Integrated Gradients):

* Gradient: one noise-free point, ``alpha = 1``;
* SmoothGrad: ``N`` noise samples, one point each;
* Integrated Gradients: ``S`` path points;
* SmoothGrad-IG: ``N x S`` points.

:func:`path_attributions` enumerates the ``B * N * S`` points lazily and sends them through the
model in chunks of at most ``internal_batch_size`` (the memory bound, as captum's
``internal_batch_size``), one forward + backward per chunk, so that the work is the lower bound
``ceil(B*N*S / internal_batch_size)`` batched passes. Samples never mix: point ``(b, n, s)``
depends only on sample ``b``, and noise ``eps_n`` comes from a ``torch.Generator`` seeded with
``(seed, n)``, so a batch gives what separate calls give. Gradients are of the pre-softmax logit
of the target class of each sample.
"""

from __future__ import annotations

import contextlib
from typing import Dict, Iterator, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .validation import TargetLike, as_targets, check_logits, check_positive_int, warn_if_probabilities

DEFAULT_INTERNAL_BATCH_SIZE = 8


@contextlib.contextmanager
def explaining(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Put ``model`` in eval mode (BatchNorm uses running statistics, dropout is off, so that
    samples of a batch stay independent) and restore every module's ``training`` flag after."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}.")
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, flag in flags:
            module.training = flag


def model_device_dtype(model: torch.nn.Module) -> Tuple[torch.device, torch.dtype]:
    """Device and floating dtype of the model's first parameter/buffer (CPU float32 if none)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.float32


def checked_forward(model: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """``model(inputs)`` checked to be ``(B, classes)`` logits."""
    logits = check_logits(model(inputs), inputs.shape[0])
    warn_if_probabilities(logits)
    return logits


def resolve_targets(model: torch.nn.Module, x: torch.Tensor, target: TargetLike,
                    internal_batch_size: int) -> torch.Tensor:
    """One class index per sample ``(B,)``: ``target`` checked against the model's number of
    classes, or (``None``) the predicted class ``argmax`` of the logits of the clean input,
    computed without gradients in chunks of ``internal_batch_size``."""
    rows = []
    with torch.no_grad():
        for start in range(0, x.shape[0], internal_batch_size):
            logits = checked_forward(model, x[start:start + internal_batch_size])
            if target is not None:
                return as_targets(target, x.shape[0], logits.shape[1], x.device)
            rows.append(logits.argmax(dim=1))
    return torch.cat(rows)


def resolve_baselines(baselines: Union[str, float, int, np.ndarray, torch.Tensor, None],
                      x: torch.Tensor, name: str = "baselines") -> torch.Tensor:
    """Baseline images ``(B, C, *spatial)`` for ``x``.

    ``baselines``: ``"min"`` (each sample's minimum, the study's "black"), ``"max"`` ("white"),
    ``"zero"`` / ``None`` (zeros, captum's default), a number (constant), or an array/tensor
    broadcastable to ``(B, C, *spatial)`` (e.g. ``(C, *spatial)`` or ``(B, C, *spatial)``).
    """
    view = (-1,) + (1,) * (x.ndim - 1)
    if baselines is None or (isinstance(baselines, str) and baselines == "zero"):
        return torch.zeros_like(x)
    if isinstance(baselines, str):
        if baselines == "min":
            return x.flatten(1).min(dim=1).values.view(view).expand_as(x).clone()
        if baselines == "max":
            return x.flatten(1).max(dim=1).values.view(view).expand_as(x).clone()
        raise ValueError(f"{name} must be 'min', 'max', 'zero', a number or an array; got {baselines!r}.")
    if isinstance(baselines, (int, float)) and not isinstance(baselines, bool):
        return torch.full_like(x, float(baselines))
    tensor = torch.as_tensor(np.asarray(baselines) if isinstance(baselines, np.ndarray) else baselines)
    tensor = tensor.to(device=x.device, dtype=x.dtype)
    try:
        return torch.broadcast_to(tensor, x.shape).clone()
    except RuntimeError as error:
        raise ValueError(f"{name} of shape {tuple(tensor.shape)} does not broadcast to the images' "
                         f"shape {tuple(x.shape)}; give (C, *spatial) or (B, C, *spatial).") from error


def noise_sample(shape: Sequence[int], seed: int, index: int, device: torch.device,
                 dtype: torch.dtype) -> torch.Tensor:
    """Standard normal noise ``eps_index`` of ``shape``, from a CPU ``torch.Generator`` seeded with
    ``(seed, index)`` (so it does not depend on the batch, the device or the global RNG)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index)]).generate_state(1)[0]
    generator = torch.Generator(device="cpu").manual_seed(int(state))
    return torch.randn(tuple(shape), generator=generator, dtype=torch.float32).to(device=device, dtype=dtype)


def path_attributions(
    model: torch.nn.Module,
    x: torch.Tensor,
    target: TargetLike,
    *,
    alphas: Optional[Sequence[float]] = None,
    step_weights: Optional[Sequence[float]] = None,
    baselines: Optional[torch.Tensor] = None,
    multiply_by_inputs: bool = False,
    nt_samples: int = 1,
    noise_std: Optional[torch.Tensor] = None,
    nt_type: str = "smoothgrad",
    seed: int = 0,
    internal_batch_size: int = DEFAULT_INTERNAL_BATCH_SIZE,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Noise-averaged path-integrated input gradients of the target logit.

    Args:
        model: classifier in eval mode returning ``(B, classes)`` logits.
        x: images ``(B, C, *spatial)`` on the model's device.
        target: ``None`` (predicted class), an int, or one int per sample.
        alphas: path positions in ``[0, 1]`` (``S`` of them); ``None`` means the input itself.
        step_weights: weight of each path position (``S``); ``None`` means 1.
        baselines: ``(B, C, *spatial)`` path start; required with ``alphas``.
        multiply_by_inputs: multiply the weighted gradient sum by ``x_n - baselines`` (IG).
        nt_samples: number of noise samples ``N`` (1 and ``noise_std=None``: no noise).
        noise_std: ``(B,)`` absolute noise standard deviation per sample.
        nt_type: how noisy attributions ``a_n`` are combined, as captum's ``NoiseTunnel``:
            ``"smoothgrad"`` mean ``a_n``, ``"smoothgrad_sq"`` mean ``a_n**2``, ``"vargrad"``
            variance ``mean a_n**2 - (mean a_n)**2``.
        seed: seed of the noise (see :func:`noise_sample`).
        internal_batch_size: at most this many points per forward/backward pass.

    Returns:
        ``(attributions (B, C, *spatial), targets (B,) long)``.
    """
    internal_batch_size = check_positive_int("internal_batch_size", internal_batch_size)
    nt_samples = check_positive_int("nt_samples", nt_samples)
    if nt_type not in ("smoothgrad", "smoothgrad_sq", "vargrad"):
        raise ValueError(f"nt_type must be 'smoothgrad', 'smoothgrad_sq' or 'vargrad'; got {nt_type!r}.")
    batch = x.shape[0]
    steps = 1 if alphas is None else len(alphas)
    if alphas is not None and baselines is None:
        raise ValueError("baselines are required with alphas (path integration).")
    alpha_t = None if alphas is None else torch.as_tensor(list(alphas), dtype=x.dtype, device=x.device)
    weight_t = (torch.ones(steps, dtype=x.dtype, device=x.device) if step_weights is None
                else torch.as_tensor(list(step_weights), dtype=x.dtype, device=x.device))
    noisy = noise_std is not None
    plain = alphas is None and not noisy
    if plain and nt_samples != 1:
        raise ValueError("nt_samples > 1 needs a noise level (noise_std).")

    # Targets: for the plain gradient they come from the same forward pass (no extra pass).
    if target is None and plain:
        targets = torch.full((batch,), -1, dtype=torch.long, device=x.device)
    elif target is None:
        targets = resolve_targets(model, x, None, internal_batch_size)
    else:  # range-checked against the class count at the first forward pass
        targets = as_targets(target, batch, None, x.device)

    view = (-1,) + (1,) * (x.ndim - 1)
    noise_cache: Dict[int, torch.Tensor] = {}

    def noisy_input(n: int) -> torch.Tensor:
        if not noisy:
            return x
        if n not in noise_cache:  # the noisy batch x_n, kept until noise sample n is folded in
            noise_cache[n] = x + noise_std.view(view) * noise_sample(x.shape[1:], seed, n, x.device, x.dtype)
        return noise_cache[n]

    total = torch.zeros_like(x)
    total_sq = torch.zeros_like(x) if nt_type == "vargrad" else None
    partial: Dict[int, torch.Tensor] = {}
    n_points = nt_samples * steps * batch
    per_noise = steps * batch

    def finalize(n: int) -> None:
        gradient_sum = partial.pop(n)
        if multiply_by_inputs:
            gradient_sum = gradient_sum * (noisy_input(n) - baselines)
        noise_cache.pop(n, None)
        if nt_type == "smoothgrad":
            total.add_(gradient_sum)
        elif nt_type == "smoothgrad_sq":
            total.add_(gradient_sum * gradient_sum)
        else:
            total.add_(gradient_sum)
            total_sq.add_(gradient_sum * gradient_sum)

    for start in range(0, n_points, internal_batch_size):
        index = torch.arange(start, min(start + internal_batch_size, n_points))
        # Point order: noise sample, then image, then path step (fastest), so that a chunk
        # holds runs of one image's steps and finished noise samples can be folded in early.
        n_idx = (index // per_noise).tolist()
        b_idx = ((index // steps) % batch).tolist()
        s_idx = (index % steps).tolist()
        rows = []
        for n, s, b in zip(n_idx, s_idx, b_idx):
            point = noisy_input(n)[b]
            if alpha_t is not None:
                point = baselines[b] + alpha_t[s] * (point - baselines[b])
            rows.append(point)
        inputs = torch.stack(rows).detach().requires_grad_(True)
        b_tensor = torch.as_tensor(b_idx, device=x.device)
        with torch.enable_grad():
            # clone: a model whose first op is in place (e.g. ReLU(inplace=True)) must not write
            # into the leaf we differentiate against.
            logits = checked_forward(model, inputs.clone())
            chunk_targets = targets[b_tensor]
            if plain and target is None:
                chunk_targets = logits.detach().argmax(dim=1)
                targets[b_tensor] = chunk_targets
            elif start == 0:  # validate the explicit targets against the class count once
                as_targets(targets.cpu(), batch, logits.shape[1], x.device)
            selected = logits.gather(1, chunk_targets[:, None]).sum()
            (grads,) = torch.autograd.grad(selected, inputs)
        grads = grads * weight_t[torch.as_tensor(s_idx, device=x.device)].view(view)
        # Deterministic accumulation (no atomics): sum each (noise sample, image) group.
        position = 0
        while position < len(b_idx):
            end = position
            while end < len(b_idx) and n_idx[end] == n_idx[position] and b_idx[end] == b_idx[position]:
                end += 1
            n, b = n_idx[position], b_idx[position]
            if n not in partial:
                partial[n] = torch.zeros_like(x)
            partial[n][b] += grads[position:end].sum(dim=0)
            position = end
        for n in sorted(partial):
            if (n + 1) * per_noise <= index[-1].item() + 1:
                finalize(n)
    total = total / nt_samples
    if total_sq is not None:
        total = total_sq / nt_samples - total * total
    return total, targets
