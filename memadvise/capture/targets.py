"""What can be profiled without a model file: Hugging Face configs, timm and torchvision names.

:func:`load_target` is the one entry point every command uses; it hands model files to
:func:`memadvise.capture.loader.load_model_file` and builds a :class:`ModelSpec` itself for

* a folder holding a Hugging Face ``config.json`` (``path/to/model/``, or the ``config.json`` itself);
* a Hugging Face Hub name (``gpt2``, ``org/name``): only its ``config.json`` is read, from the local
  Hugging Face cache; when it is not cached it is fetched alone (``HF_TOKEN`` is used), unless
  ``HF_HUB_OFFLINE`` is set — then the error says how to get it;
* ``timm:NAME`` and ``torchvision:NAME``: the library's constructor with random weights.

No weights are ever read or downloaded: the model is built from its configuration with random weights
(on the meta device for a fake trace). Batches are synthesised from the configuration: token ids of
``vocab_size`` (``seq_len``: ``--seq-len``, else the model's maximum positions, at most
:data:`MAX_DEFAULT_SEQ_LEN`), images of the configured (or ``--image-size``) size, and labels for the
head's loss, so the output carries ``.loss`` as in Hugging Face training.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import socket
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from memadvise.capture.loader import DEFAULT_FACTORY, TARGET_HINT, ModelSpec, load_model_file
from memadvise.capture.loader import split_target as split_file_target
from memadvise.errors import ModelFileError, UsageError

#: ``--task`` → the ``transformers`` Auto class it builds.
TASKS: dict[str, str] = {
    "causal-lm": "AutoModelForCausalLM",
    "masked-lm": "AutoModelForMaskedLM",
    "seq-cls": "AutoModelForSequenceClassification",
    "token-cls": "AutoModelForTokenClassification",
    "qa": "AutoModelForQuestionAnswering",
    "seq2seq-lm": "AutoModelForSeq2SeqLM",
    "image-cls": "AutoModelForImageClassification",
    "base": "AutoModel",
}
#: A class name's ending → the task whose labels it takes (the first match wins).
_HEADS: tuple[tuple[str, str], ...] = (
    ("ForCausalLM", "causal-lm"),
    ("LMHeadModel", "causal-lm"),
    ("ForMaskedLM", "masked-lm"),
    ("ForPreTraining", "pretraining"),
    ("ForSequenceClassification", "seq-cls"),
    ("ForTokenClassification", "token-cls"),
    ("ForQuestionAnswering", "qa"),
    ("ForConditionalGeneration", "seq2seq-lm"),
    ("ForSeq2SeqLM", "seq2seq-lm"),
    ("ForImageClassification", "image-cls"),
)
#: transformers' loss for each task (set on the model so that transformers need not guess it).
_LOSS_TYPES = {
    "causal-lm": "ForCausalLM",
    "masked-lm": "ForMaskedLM",
    "seq-cls": "ForSequenceClassification",
    "token-cls": "ForTokenClassification",
    "qa": "ForQuestionAnswering",
    "image-cls": "ForImageClassification",
}
MAX_DEFAULT_SEQ_LEN = 2048
DEFAULT_IMAGE_SIZE = 224
_POSITION_KEYS = ("max_position_embeddings", "n_positions", "n_ctx", "max_seq_len", "seq_length")
_HUB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_VISION_PREFIXES = ("timm:", "torchvision:")


def load_target(target: str | Path, *, task: str | None = None, image_size: int | None = None) -> ModelSpec:
    """The model spec for a model file, a Hugging Face config folder or Hub name, ``timm:NAME`` or
    ``torchvision:NAME`` (``task`` and ``image_size`` apply to the last three)."""
    text = str(target)
    if text.endswith(f":{DEFAULT_FACTORY}") and is_model_target(text[: -len(DEFAULT_FACTORY) - 1]):
        text = text[: -len(DEFAULT_FACTORY) - 1]  # ``target:build_model``, as memadvise check writes targets
    if task is not None and task not in TASKS:
        raise UsageError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    if image_size is not None and image_size < 1:
        raise UsageError(f"image size must be at least 1, not {image_size}")
    if text.startswith(_VISION_PREFIXES):
        if task is not None:
            raise UsageError(
                "--task chooses the head of a Hugging Face model; timm and torchvision models classify"
            )
        library, _, name = text.partition(":")
        return vision_spec(library, name, image_size)
    path = Path(text)
    if path.is_dir() and (path / "config.json").is_file():
        return hf_spec(path / "config.json", path.resolve().name or text, path, task, image_size)
    if path.name == "config.json" and path.is_file():
        return hf_spec(path, path.resolve().parent.name, path, task, image_size)
    if not path.exists() and _HUB_NAME.match(text) and not text.endswith((".py", ".json")):
        return hf_spec(hub_name_config(text), text, Path(text), task, image_size)
    if task is not None or image_size is not None:
        option = "--task" if task is not None else "--image-size"
        raise UsageError(
            f"{option} applies to Hugging Face, timm and torchvision targets; "
            "a model file builds its own model"
        )
    return load_model_file(target)


def is_named_target(text: str) -> bool:
    """``timm:NAME``, ``torchvision:NAME`` or a Hub name (no file or folder of that name here)."""
    if text.startswith(_VISION_PREFIXES):
        return text.count(":") == 1
    return not Path(text).exists() and bool(_HUB_NAME.match(text)) and not text.endswith((".py", ".json"))


def is_model_target(text: str) -> bool:
    """A target that is not a model file: a named one, or a Hugging Face config folder or file."""
    path = Path(text)
    return (
        is_named_target(text)
        or (path.is_dir() and (path / "config.json").is_file())
        or (path.name == "config.json" and path.is_file())
    )


def split_target(target: str) -> tuple[Path, str]:
    """``model.py:factory`` → (path, factory), as :func:`memadvise.capture.loader.split_target`; the
    other targets (see :func:`is_model_target`) keep their whole text and use ``build_model``."""
    if is_model_target(str(target)):
        return Path(target), DEFAULT_FACTORY
    return split_file_target(target)


# -- Hugging Face --------------------------------------------------------------------------------------


def _hub_cache() -> str | None:
    """The Hub cache folder from the environment as it is now (huggingface_hub reads it at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_name_config(text: str) -> Path:
    """The ``config.json`` of the Hub name ``text`` — unless ``text.py`` is a model file here, which is
    what was meant. Needs no torch (the command line calls it before importing torch)."""
    if Path(f"{text}.py").is_file():
        raise ModelFileError(f"'{text}' not found; did you mean the model file {text}.py?")
    return hub_config(text)


def hub_config(name: str) -> Path:
    """The local path of Hub model ``name``'s ``config.json``: from the cache, else fetched alone."""
    try:
        from huggingface_hub import hf_hub_download, try_to_load_from_cache
    except ImportError:
        raise ModelFileError(
            f"'{name}' is not a file or folder here; "
            "Hub names need huggingface_hub (pip install transformers)"
        ) from None
    cache = _hub_cache()
    how = (
        f"get it where there is network (`hf download {name} config.json`) or give a folder holding "
        "its config.json"
    )
    try:
        found = try_to_load_from_cache(name, "config.json", cache_dir=cache)
    except Exception:  # noqa: BLE001 - an id huggingface_hub rejects is simply not in the cache
        found = None
    if isinstance(found, str):
        return Path(found)
    missing = (
        f"'{name}' is not a file or folder here, nor a Hub model whose config.json is in the local cache"
    )
    if _offline():
        raise ModelFileError(f"{missing} (HF_HUB_OFFLINE is set); {how}")
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    host = urlparse(endpoint).hostname or endpoint
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        raise ModelFileError(f"{missing}, and {host} cannot be reached; {how}") from None
    hub_logger = logging.getLogger("huggingface_hub")
    level = hub_logger.level
    hub_logger.setLevel(logging.CRITICAL)  # its retry messages would break the one-line error
    try:
        fetched = hf_hub_download(
            name, "config.json", cache_dir=cache, token=os.environ.get("HF_TOKEN") or None
        )
    except Exception as exc:  # noqa: BLE001 - offline, unknown repository, gated model: one line each
        raise ModelFileError(f"{missing}, and fetching it failed ({type(exc).__name__}); {how}") from None
    finally:
        hub_logger.setLevel(level)
    return Path(fetched)


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers' warnings about configs built for tests (token ids, loss type) stay off stderr."""
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)


def hf_spec(
    config_file: Path, label: str, where: Path, task: str | None, image_size: int | None
) -> ModelSpec:
    """A spec that builds the model of a Hugging Face ``config.json`` with random weights."""
    try:
        import transformers
    except ImportError:
        raise ModelFileError(
            f"{where}: a Hugging Face config needs transformers (pip install transformers)"
        ) from None
    try:
        raw = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{config_file}: not a readable JSON config ({type(exc).__name__})") from None
    if not isinstance(raw, dict) or "model_type" not in raw:
        raise ModelFileError(f"{config_file}: not a Hugging Face model config (no model_type); {TARGET_HINT}")
    try:
        with _quiet_transformers():
            config = transformers.AutoConfig.from_pretrained(str(config_file.parent), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - an unknown model_type, a config this version cannot read
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(
            f"{config_file}: transformers {transformers.__version__} cannot read it: {detail}"
        ) from None
    if image_size is not None:
        if not hasattr(config, "image_size"):
            raise UsageError(f"--image-size: {label} ({config.model_type}) takes no images")
        config.image_size = image_size
    builder, head = _hf_builder(transformers, config, label, task)
    if head == "seq-cls" and getattr(config, "pad_token_id", 0) is None:
        config.pad_token_id = 0  # sequence classifiers find each row's last token by the padding id
    inputs, seq_len = _hf_inputs(config, head, label)

    def build_model() -> Any:
        with _quiet_transformers():
            model = builder(config)
        if head in _LOSS_TYPES and hasattr(model, "loss_type"):
            model.loss_type = _LOSS_TYPES[head]
        for part in model.modules():  # the batch has no padding (see token_inputs), hence no mask
            if hasattr(part, "warn_if_padding_and_no_attention_mask"):
                part.warn_if_padding_and_no_attention_mask = _no_padding
        return model

    return ModelSpec(
        path=where,
        name=label,
        factory_name="build_model",
        build_model=build_model,
        example_inputs=inputs,
        loss_fn=hidden_state_loss if head == "base" else None,
        module=types.ModuleType(f"memadvise_target_{label}"),
        seq_len=seq_len,
    )


def _no_padding(*args: Any, **kwargs: Any) -> None:
    """transformers' padding check, for batches memadvise made without padding."""


def hidden_state_loss(output: Any, inputs: Any) -> Any:
    """A base model (no head) has no loss: the sum of its last hidden state stands for one."""
    hidden = getattr(output, "last_hidden_state", None)
    return (hidden if hidden is not None else output[0]).sum()


def _hf_builder(
    transformers: Any, config: Any, label: str, task: str | None
) -> tuple[Callable[[Any], Any], str]:
    """``(config → model, head)``: the ``--task`` Auto class, else ``architectures[0]``, else the base
    model."""
    if task is not None:
        auto = getattr(transformers, TASKS[task])

        def from_auto(cfg: Any) -> Any:
            return auto.from_config(cfg)

        try:
            auto._model_mapping[type(config)]  # noqa: B018 - raises for a config the task has no class for
        except (KeyError, AttributeError, ValueError):
            raise UsageError(f"{label}: {config.model_type} has no model for --task {task}") from None
        return from_auto, task
    names = list(getattr(config, "architectures", None) or [])
    if not names:
        return transformers.AutoModel.from_config, "base"
    cls = getattr(transformers, names[0], None)
    if cls is None:
        raise ModelFileError(
            f"{label}: transformers {transformers.__version__} has no class {names[0]} (architectures[0]); "
            f"choose a head with --task ({', '.join(TASKS)})"
        )
    head = next((task for end, task in _HEADS if names[0].endswith(end)), "base")
    return cls._from_config, head


def _max_positions(config: Any) -> int | None:
    for key in _POSITION_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _hf_inputs(config: Any, head: str, label: str) -> tuple[Callable[..., Any], int | None]:
    """``example_inputs(batch_size, seq_len=…)`` for the config's model and head, and the default
    sequence length (``None`` for images)."""
    import torch

    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    vocab = getattr(text, "vocab_size", None)
    channels = getattr(config, "num_channels", None)
    size = getattr(config, "image_size", None)
    num_labels = max(int(getattr(config, "num_labels", 2) or 2), 1)
    if isinstance(vocab, int) and vocab > 0 and head != "image-cls":
        positions = _max_positions(text)
        pad = getattr(config, "pad_token_id", None)
        default_len = min(positions or 512, MAX_DEFAULT_SEQ_LEN)

        def token_inputs(batch_size: int, seq_len: int = default_len) -> dict[str, Any]:
            if positions is not None and seq_len > positions:
                raise UsageError(f"--seq-len {seq_len} is longer than {label}'s {positions} positions")
            if isinstance(pad, int) and 0 <= pad < vocab and vocab > 1:  # no padding: no mask is needed
                ids = torch.randint(0, vocab - 1, (batch_size, seq_len))
                ids = ids + (ids >= pad).long()
            else:
                ids = torch.randint(0, vocab, (batch_size, seq_len))
            batch: dict[str, Any] = {"input_ids": ids}
            if head in ("causal-lm", "masked-lm", "seq2seq-lm"):
                batch["labels"] = ids
            elif head == "pretraining":
                batch["labels"] = ids
                batch["next_sentence_label"] = torch.randint(0, 2, (batch_size,))
            elif head == "seq-cls":
                batch["labels"] = torch.randint(0, num_labels, (batch_size,))
            elif head == "token-cls":
                batch["labels"] = torch.randint(0, num_labels, (batch_size, seq_len))
            elif head == "qa":
                batch["start_positions"] = torch.randint(0, seq_len, (batch_size,))
                batch["end_positions"] = torch.randint(0, seq_len, (batch_size,))
            elif getattr(config, "is_encoder_decoder", False):
                batch["decoder_input_ids"] = ids
            return batch

        return token_inputs, default_len
    if isinstance(channels, int) and size is not None:
        side = size if isinstance(size, int) else int(max(size))

        def image_inputs(batch_size: int, seq_len: int | None = None) -> dict[str, Any]:
            if seq_len is not None:
                raise UsageError(f"--seq-len applies to text models; {label} takes images (use --image-size)")
            batch: dict[str, Any] = {"pixel_values": torch.randn(batch_size, channels, side, side)}
            if head == "image-cls":
                batch["labels"] = torch.randint(0, num_labels, (batch_size,))
            return batch

        return image_inputs, None
    raise ModelFileError(
        f"{label}: memadvise cannot make a batch for a {config.model_type} config (neither a vocabulary nor "
        "an image size); describe the model in a model file (`memadvise init model.py`)"
    )


# -- timm and torchvision --------------------------------------------------------------------------------


def vision_spec(library: str, name: str, image_size: int | None) -> ModelSpec:
    """``timm:NAME`` or ``torchvision:NAME``: random weights, a classification loss on random images."""
    import torch

    if not name:
        raise UsageError(f"give a model name after '{library}:' (e.g. {library}:resnet50)")
    if library == "timm":
        try:
            import timm
        except ImportError:
            raise ModelFileError("timm:NAME needs timm (pip install timm, or memadvise[vision])") from None
        if not timm.is_model(name):
            raise ModelFileError(f"timm has no model {name!r}{_close(name, timm.list_models())}")
        side = image_size or _timm_size(name)

        def build_timm() -> Any:
            if image_size is None:
                return timm.create_model(name, pretrained=False)
            try:  # vision transformers size their position embeddings by the image
                return timm.create_model(name, pretrained=False, img_size=side)
            except TypeError:  # convolutional networks take any size and no img_size
                return timm.create_model(name, pretrained=False)

        build = build_timm
    else:
        try:
            import torchvision.models
        except ImportError:
            raise ModelFileError(
                "torchvision:NAME needs torchvision (pip install torchvision, or memadvise[vision])"
            ) from None
        known = torchvision.models.list_models()
        if name not in known:
            raise ModelFileError(f"torchvision has no model {name!r}{_close(name, known)}")
        side = image_size or DEFAULT_IMAGE_SIZE

        def build_torchvision() -> Any:
            return torchvision.models.get_model(name, weights=None)

        build = build_torchvision

    def image_batch(batch_size: int) -> Any:
        return torch.randn(batch_size, 3, side, side)

    return ModelSpec(
        path=Path(f"{library}:{name}"),
        name=f"{library}:{name}",
        factory_name="build_model",
        build_model=build,
        example_inputs=image_batch,
        loss_fn=classification_loss,
        module=types.ModuleType(f"memadvise_target_{library}_{name}"),
    )


def classification_loss(output: Any, inputs: Any) -> Any:
    """Cross entropy of the logits (the first output of models with auxiliary heads) against labels."""
    import torch

    logits = output[0] if isinstance(output, (tuple, list)) else getattr(output, "logits", output)
    labels = torch.arange(logits.shape[0], device=logits.device) % logits.shape[-1]
    return torch.nn.functional.cross_entropy(logits, labels)


def _timm_size(name: str) -> int:
    """The input side of timm model ``name``'s default configuration (224 when it has none)."""
    try:
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(name)
    except Exception:  # noqa: BLE001 - no pretrained configuration: the common size
        cfg = None
    size = getattr(cfg, "input_size", None)
    return int(size[-1]) if size else DEFAULT_IMAGE_SIZE


def _close(name: str, known: list[str]) -> str:
    near = difflib.get_close_matches(name, known, n=3)
    return f" (did you mean {', '.join(near)}?)" if near else ""
