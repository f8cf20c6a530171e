"""Memory preflight: estimate a training run's peak memory before it starts.

    est, warning = preflight(cfg, AutoConfig.from_pretrained(path), example_lengths(tok, examples), "cpu")
    print(est.summary())          # breakdown in MiB
    print(est.versus(measured))   # after the run: "estimated 2.7 GiB, measured 2.8 GiB (-3%)"

The estimate is a sum of terms, each a closed form of the model config and the TrainConfig, so it needs no
model files and runs in microseconds. It predicts what `training.sft.peak_memory_mb()` reports: the worker's
peak RSS on CPU (so the Python/torch runtime and the mmapped checkpoint count), and
`torch.cuda.max_memory_allocated()` on CUDA (tensors only: the CUDA context is not counted there, but
`fits()` / `preflight()` add it, since the new process will need one).

Terms (bytes; N = batch_size x S tokens, S = the longest example capped at max_length, since the collator
pads each batch to its longest row; h, i, nh, hd, V, layers from the model config; d = compute dtype size):

  runtime      process baseline. CPU: torch, transformers, trl, peft, datasets, bitsandbytes, tokenizer, DB
               and trainer (RSS before the first step minus the weights: 0.5-0.63 GiB across runs; 540 MiB
               fits the bench), plus ~115 MiB of bitsandbytes CPU-kernel code pages the first quantized step
               maps in. CUDA: 0 (the allocator never sees the context; cuBLAS workspace is small).
  weights      the linear layers bitsandbytes converts (every nn.Linear except lm_head):
               nf4 0.5 B/param + absmax per 64-block (fp32: 4/64 B; double quant: 1/64 + 4/(64*256) B),
               int8 1 B/param + one fp32 scale per output row, none: d. Everything else (embeddings, an untied
               lm_head, norms) stays unquantized and prepare_model_for_kbit_training upcasts it to fp32.
  checkpoint   CPU + quantization only: the checkpoint pages of the quantized layers stay mapped (resident,
               so in RSS) after loading -- params x checkpoint dtype size (405 MiB for SmolLM2's fp32 file).
               Without quantization the weights are those mapped pages, so nothing extra.
  lora         r x (in + out) per targeted module, fp32 (peft keeps adapters in fp32).
  optimizer    AdamW: 2 x fp32 per trainable param; 8-bit AdamW: 2 x 1 B (tensors under 4096 elements stay
               32-bit, as bitsandbytes does).
  gradients    fp32 per trainable param, but only with grad_accum > 1: the step peaks in the LM head's
               backward, before any LoRA gradient exists, and zero_grad frees them before the next forward.
  activations  what autograd saves during the forward, per token per layer, in elements (counted with
               torch's saved-tensor hooks on SmolLM2; this formula matches those counts within 1%):
                 2h (inputs to the two RMSNorms) + 4 nh hd (SDPA keeps q, k, v repeated to nh heads, and the
                 output) + 3i (gate, up, act) + S (the 4-D padding mask each layer keeps) + nh + 2
                 + per LoRA module: r, plus its input: with lora_dropout > 0 each module keeps its dropout
                   output and mask (2 d_in; the mask is 1 byte on CUDA), with dropout 0 the input is shared
                   (q/k/v: h once, gate/up: h once, o_proj: 0 -- it is the SDPA output, down_proj: i).
               With gradient checkpointing: h per token per layer (each layer's input) + one layer's full set
               (recomputed during backward).
  logits       TRL's fused LM head never builds the B x S x V logits: it projects tiles of
               min(N, 4096) tokens x min(V, 32768) vocab. Without Triton (CPU) the tile is folded with torch
               ops: ~8.2 tile-sized fp32 temporaries at once in the backward (measured: 8.1-8.3), while all
               activations are still held -- this is where the step peaks. With Triton (CUDA) ~2 tiles in
               the compute dtype plus the fp32 hidden gradient. (A TRL without the fused head materializes
               the logits: B x S x V x 4 B x 3 -- logits, log-softmax and its gradient.)
  allocator    CPU only: glibc keeps freed activation memory that later tensors cannot always reuse, so peak
               RSS exceeds the live tensors by a share of the step's full activation volume (measured from
               per-layer RSS traces: 0.4-0.5 with non-quantized base layers, 0-0.5 and 0.1 on average with
               nf4 under bf16 autocast, 0.3 with nf4 in fp32 -- a CPU without native bf16, where the share
               measured 0.45-0.55 on one box and about 0.1 on another, so 0.3 keeps both within +-17%; more
               with gradient checkpointing, whose recompute frees a layer's worth per layer).

  mixed precision (bf16 autocast, CPU or CUDA, k-bit base): the norms stay fp32, so each layer also keeps
               their fp32 intermediates (2h x 4 B) and the dropout outputs of the norm-fed LoRA modules
               are fp32 too; on CPU the LM-head tiles are fp32 whatever the compute dtype.
  CUDA         + 64 MiB of cuBLAS workspaces; with gradient checkpointing the recomputed layer reuses the
               head's freed tiles, so only the larger of the two counts.

peak = the sum of the terms. bench/bench_memory_preflight.py compares it with measured peaks on SmolLM2-135M:
on CPU within +-15% in fp32 (15 configs, worst -13.6%) and within +-12% with bf16 autocast (bench/results/
memory_preflight_cpu.md); in fp32 on a 2-core AMD EPYC, with 100 samples (4 x 503 tokens) and the demo's own
config among the rows, 6/6 within -17.4%...-10.2% before the fp32 share and -10.4%...-4.8% after
(bench/results/memory_preflight_cpu_fp32.md); on an H100 15/15
within +-20% (worst -15.4%; bench/results/memory_preflight_gpu.md). The measured peak itself varies 5-8% run
to run on CPU.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from training.config import TrainConfig, resolve_compute_dtype

MIB = 2**20

# Fitted on the 2-core CPU box (bench/bench_memory_preflight.py): the worker's RSS before its first step,
# less the weights (500-630 MiB across runs).
CPU_RUNTIME_MIB = 540.0
# bitsandbytes' CPU kernels: library pages the first quantized step maps in (RssFile, measured ~115 MiB).
CPU_BNB_CODE_MIB = 115.0
# glibc malloc keeps freed tensor memory that later tensors cannot always reuse (its mmap threshold grows to
# the size of freed blocks, up to 32 MiB, so mid-sized activations land in the heap and leave holes): peak RSS
# exceeds the live tensors by this share of the step's full activation volume (measured on SmolLM2-135M,
# bench/bench_memory_preflight.py and per-layer RSS traces). Non-quantized base layers fragment the most.
# In fp32 (a CPU without native bf16) every activation is twice as large and more of them land in the heap:
# 0.30 for nf4 (a 2-core AMD EPYC without AVX512, 6 configs, bench/results/memory_preflight_cpu_fp32.md).
CPU_ALLOCATOR_SHARE = {"none": 0.45, "quantized": 0.10, "quantized fp32": 0.30, "quantized+grad_ckpt": 0.10}
# torch.cuda.max_memory_allocated does not see the CUDA context, only tensors and workspaces...
CUDA_RUNTIME_MIB = 64.0  # cuBLAS/cuBLASLt workspaces, taken through torch's allocator (H100: 60-80 MiB)
# ...but a new training process needs one, so fits()/preflight() keep this much free on top.
CUDA_CONTEXT_MIB = 512.0

NF4_BLOCK = 64          # bitsandbytes 4-bit blocksize: one absmax per 64 weights
NESTED_BLOCK = 256      # double quant: absmax quantized to uint8 in blocks of 256
LOGPROB_TOKEN_TILE = 4096    # trl.kernels.chunked_logprob.TOKEN_CHUNK_SIZE
LOGPROB_VOCAB_TILE = 32768   # trl.trainer.utils._CHUNKED_LOGPROB_CHUNK_SIZE
CPU_LOGPROB_TILES = 8.2      # live tile-sized temporaries in the torch (non-Triton) backward, measured
CUDA_LOGPROB_TILES = 2.0     # the projection buffer + the weight chunk cast, Triton folds in place
UNFUSED_LOGITS_COPIES = 3.0  # logits, log-softmax and their gradient when the head is not fused
BNB_MIN_8BIT_SIZE = 4096     # bitsandbytes 8-bit optimizers keep smaller tensors in 32-bit

LLAMA_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
NORM_FED = ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")  # their input is an RMSNorm output


def _dtype_bytes(name: str) -> int:
    return {"float32": 4, "bfloat16": 2, "float16": 2, "float64": 8}.get(str(name).replace("torch.", ""), 4)


def _is_cuda(device: str) -> bool:
    return str(device).startswith("cuda")


def resolve_device(device: str = "auto") -> str:
    """'auto' -> 'cuda' when torch sees a GPU (as the worker decides), else 'cpu'."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def compute_dtype_bytes(cfg: TrainConfig, device: str) -> int:
    """What training.sft.pick_dtype chooses (auto: bf16/fp16 on CUDA, bf16 on CPUs with native bf16, else fp32)."""
    return _dtype_bytes(resolve_compute_dtype(cfg.compute_dtype, device))


def _fused_lm_head_available() -> bool:
    """Whether the installed TRL scores tokens with its chunked LM head (found without importing TRL)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("trl")
    if spec is None or not spec.origin:
        return False
    return (Path(spec.origin).parent / "kernels" / "chunked_logprob.py").exists()


@dataclass
class ModelShape:
    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    checkpoint_dtype_bytes: int
    attn_implementation: str

    @classmethod
    def from_config(cls, c) -> "ModelShape":
        c = c.get_text_config() if hasattr(c, "get_text_config") else c
        heads = int(c.num_attention_heads)
        hidden = int(c.hidden_size)
        head_dim = getattr(c, "head_dim", None) or hidden // heads
        dtype = getattr(c, "dtype", None) or vars(c).get("torch_dtype") or "float32"
        return cls(hidden=hidden, layers=int(c.num_hidden_layers), intermediate=int(c.intermediate_size),
                   heads=heads, kv_heads=int(getattr(c, "num_key_value_heads", None) or heads),
                   head_dim=int(head_dim), vocab=int(c.vocab_size),
                   tied=bool(getattr(c, "tie_word_embeddings", True)),
                   checkpoint_dtype_bytes=_dtype_bytes(dtype),
                   attn_implementation=str(getattr(c, "_attn_implementation", None) or "sdpa"))

    def linears(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each decoder-layer linear (the Llama/Gemma/Qwen/Mistral family layout)."""
        h, i, q, kv = self.hidden, self.intermediate, self.heads * self.head_dim, self.kv_heads * self.head_dim
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    def linear_params(self) -> int:
        return self.layers * sum(a * b for a, b in self.linears().values())

    def other_params(self) -> int:
        """Embeddings, an untied lm_head and the RMSNorms: what bitsandbytes leaves unquantized."""
        emb = self.vocab * self.hidden
        return emb + (0 if self.tied else emb) + (2 * self.layers + 1) * self.hidden


def lora_targets(cfg: TrainConfig, shape: ModelShape) -> list[str]:
    targets = cfg.target_module_list()
    if targets == "all-linear":
        return list(LLAMA_LINEARS)
    known = shape.linears()
    return [t for t in targets if t in known]


@dataclass
class MemoryEstimate:
    """Estimated peak memory of one training run, broken down in MiB."""

    device: str
    batch_size: int
    seq_len: int
    runtime: float
    weights: float
    checkpoint: float
    lora: float
    optimizer: float
    gradients: float
    activations: float
    logits: float
    allocator: float = 0.0
    notes: list[str] = field(default_factory=list)

    TERMS = ("runtime", "weights", "checkpoint", "lora", "optimizer", "gradients", "activations", "logits", "allocator")

    @property
    def total(self) -> float:
        return sum(getattr(self, t) for t in self.TERMS)

    @property
    def required(self) -> float:
        """What must be free before the run starts: the peak, plus a CUDA context for the new process."""
        return self.total + (CUDA_CONTEXT_MIB if _is_cuda(self.device) else 0.0)

    def fits(self, available_mib: float) -> bool:
        return self.required <= available_mib

    def summary(self) -> str:
        width = max(len(t) for t in self.TERMS)
        lines = [f"Estimated peak memory on {self.device}: {self.total:,.0f} MiB ({_gib(self.total)}) "
                 f"for batch {self.batch_size} x {self.seq_len} tokens"]
        for t in self.TERMS:
            lines.append(f"  {t:<{width}}  {getattr(self, t):>9,.0f} MiB")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def versus(self, measured_mib: float | None) -> str:
        """The estimate next to a measured peak, for the run's page."""
        if not measured_mib:
            return f"estimated peak {_gib(self.total)}"
        err = (self.total - measured_mib) / measured_mib * 100
        return f"estimated peak {_gib(self.total)}, measured {_gib(measured_mib)} ({err:+.0f}%)"

    def to_dict(self) -> dict:
        return {**asdict(self), "total": self.total}


def _gib(mib: float) -> str:
    return f"{mib / 1024:.1f} GiB"


def _weights_bytes(cfg: TrainConfig, shape: ModelShape, d: int) -> float:
    lin, other = shape.linear_params(), shape.other_params()
    if cfg.quantization == "none":
        return (lin + other) * d
    if cfg.quantization == "nf4":
        per_param = 0.5 + (1 / NF4_BLOCK + 4 / (NF4_BLOCK * NESTED_BLOCK) if cfg.double_quant else 4 / NF4_BLOCK)
        quant = lin * per_param
    else:  # int8: int8 weight + one fp32 scale (SCB) per output row
        quant = lin + shape.layers * sum(out for _, out in shape.linears().values()) * 4
    return quant + other * 4  # prepare_model_for_kbit_training upcasts the unquantized params to fp32


def _activation_elems_per_token_layer(cfg: TrainConfig, shape: ModelShape, seq_len: int, targets: list[str],
                                      mask_elem: float, d: int) -> float:
    h, i = shape.hidden, shape.intermediate
    q = shape.heads * shape.head_dim
    per = 2 * h + 4 * q + 3 * i + seq_len + shape.heads + 2
    if shape.attn_implementation == "eager":
        per += 2 * shape.heads * seq_len  # attention weights and their softmax, B x nh x S x S
    dims = shape.linears()
    for t in targets:
        per += cfg.lora_r
    if cfg.lora_dropout > 0:
        per += sum(dims[t][0] * (1 + mask_elem) for t in targets)
        if d < 4 and cfg.quantization != "none":
            # Mixed precision on a k-bit base: prepare_model_for_kbit_training upcasts the norms to fp32, so the
            # inputs of the norm-fed modules are fp32 and so are their dropout outputs (4 bytes, not d).
            per += sum(dims[t][0] * (4 - d) / d for t in targets if t in NORM_FED)
    else:
        if any(t in targets for t in ("q_proj", "k_proj", "v_proj")):
            per += h
        if any(t in targets for t in ("gate_proj", "up_proj")):
            per += h
        if "down_proj" in targets:
            per += i
    return per


def estimate_peak_memory(cfg: TrainConfig, model_config, seq_lengths: list[int], *, device: str = "cpu",
                         fused_lm_head: bool | None = None) -> MemoryEstimate:
    """Estimated peak memory (MiB) of training `cfg` on examples of these tokenized lengths."""
    shape = ModelShape.from_config(model_config)
    device = resolve_device(device)
    on_cuda = _is_cuda(device)
    d = compute_dtype_bytes(cfg, device)
    seq_len = min(max(seq_lengths), cfg.max_length) if seq_lengths else cfg.max_length
    seq_len = max(seq_len, 1)
    tokens = cfg.batch_size * seq_len
    targets = lora_targets(cfg, shape)
    notes = []
    if cfg.target_modules not in ("all-linear", "attention") and len(targets) < len(cfg.target_module_list()):
        notes.append("some target_modules are not standard decoder linears and are not counted")

    if on_cuda:
        runtime = CUDA_RUNTIME_MIB
    else:
        runtime = CPU_RUNTIME_MIB + (CPU_BNB_CODE_MIB if cfg.quantization != "none" else 0.0)
    weights = _weights_bytes(cfg, shape, d)
    # CPU: the source pages of the quantized layers stay mapped after quantizing and count in RSS.
    checkpoint = shape.linear_params() * shape.checkpoint_dtype_bytes if (
        not on_cuda and cfg.quantization != "none") else 0.0

    dims = shape.linears()
    lora_tensors = [(cfg.lora_r * dims[t][0], dims[t][1] * cfg.lora_r) for t in targets]  # A, B per layer
    lora_params = shape.layers * sum(a + b for a, b in lora_tensors)
    lora = lora_params * 4
    # The step peaks in the LM head's backward, before any LoRA gradient exists (the previous step's were
    # freed by zero_grad); only with gradient accumulation do gradients outlive a micro-batch.
    gradients = lora_params * 4 if cfg.grad_accum > 1 else 0.0
    if not gradients:
        notes.append(f"LoRA gradients ({lora_params * 4 / MIB:,.0f} MiB) never coexist with the activations "
                     "without gradient accumulation")
    if cfg.optimizer in ("adamw_bnb_8bit", "paged_adamw_8bit"):
        optimizer = shape.layers * sum((2 if n >= BNB_MIN_8BIT_SIZE else 8) * n for ab in lora_tensors for n in ab)
    else:
        optimizer = lora_params * 8
    if cfg.optimizer.startswith("paged") and on_cuda:
        notes.append("paged optimizer state lives in unified memory, outside torch's allocator")

    mask_elem = (1 / d) if on_cuda else 1.0  # dropout masks: bool on CUDA, float on CPU (measured)
    per_layer_elems = _activation_elems_per_token_layer(cfg, shape, seq_len, targets, mask_elem, d)
    if fused_lm_head is None:
        fused_lm_head = _fused_lm_head_available()
    n_pred = cfg.batch_size * max(seq_len - 1, 1)
    if fused_lm_head:
        tile = min(n_pred, LOGPROB_TOKEN_TILE) * min(shape.vocab, LOGPROB_VOCAB_TILE)
        if on_cuda:
            logits = CUDA_LOGPROB_TILES * tile * d + n_pred * shape.hidden * 4
        else:
            # fp32 whatever the compute dtype: under CPU autocast the log-softmax temporaries are fp32
            logits = CPU_LOGPROB_TILES * tile * 4 + n_pred * shape.hidden * 4
    else:
        logits = UNFUSED_LOGITS_COPIES * tokens * shape.vocab * 4
        notes.append("this TRL has no fused LM head: the full logits are materialized")

    if cfg.gradient_checkpointing:
        recompute = tokens * per_layer_elems
        if on_cuda and recompute * d < logits:
            # On CUDA the caching allocator reuses the head's freed tiles for the layer recomputed during the
            # backward, so the peak is the head's (measured on H100); glibc on CPU does not, so both count.
            recompute = 0
        act_elems = tokens * shape.layers * shape.hidden + recompute
    else:
        act_elems = tokens * shape.layers * per_layer_elems
    act_elems += tokens * shape.hidden * 2  # final norm input and the hidden states handed to the head
    activations = act_elems * d
    if d < 4:  # RMSNorm computes in fp32 (for every layer, or only the recomputed one with checkpointing)
        activations += tokens * (1 if cfg.gradient_checkpointing else shape.layers) * 2 * shape.hidden * 4

    allocator = 0.0
    if not on_cuda:
        share = CPU_ALLOCATOR_SHARE["none" if cfg.quantization == "none" else
                                    "quantized+grad_ckpt" if cfg.gradient_checkpointing else
                                    "quantized fp32" if d == 4 else "quantized"]
        allocator = share * tokens * shape.layers * per_layer_elems * d

    return MemoryEstimate(device="cuda" if on_cuda else "cpu", batch_size=cfg.batch_size, seq_len=seq_len,
                          runtime=runtime, weights=weights / MIB, checkpoint=checkpoint / MIB, lora=lora / MIB,
                          optimizer=optimizer / MIB,
                          gradients=gradients / MIB, activations=activations / MIB, logits=logits / MIB,
                          allocator=allocator / MIB, notes=notes)


def available_memory_mib(device: str = "cpu") -> float:
    """Free memory for a new training process: available RAM on CPU, free memory on the GPU."""
    device = resolve_device(device)
    if _is_cuda(device):
        import torch

        index = torch.device(device).index
        free, _total = torch.cuda.mem_get_info(index if index is not None else torch.cuda.current_device())
        return free / MIB
    import psutil

    return psutil.virtual_memory().available / MIB


def example_lengths(tokenizer, examples: list[dict]) -> list[int]:
    """Tokenized lengths of chat prompt-completion examples, as TRL's SFTTrainer tokenizes them."""
    lengths = []
    for ex in examples:
        messages = ex["prompt"] + ex["completion"] if "prompt" in ex else ex["messages"]
        out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)
        lengths.append(len(out["input_ids"]))
    return lengths


def suggestions(cfg: TrainConfig) -> list[str]:
    tips = ["lower batch_size or max_length"]
    if not cfg.gradient_checkpointing:
        tips.append("turn on gradient_checkpointing")
    if cfg.quantization != "nf4":
        tips.append("use nf4")
    return tips


def preflight(cfg: TrainConfig, model_config, seq_lengths: list[int], device: str = "cpu", *,
              available_mib: float | None = None) -> tuple[MemoryEstimate, str | None]:
    """The estimate, and a warning when it will not fit in the memory free now (None when it fits)."""
    device = resolve_device(device)
    est = estimate_peak_memory(cfg, model_config, seq_lengths, device=device)
    free = available_memory_mib(device) if available_mib is None else available_mib
    if est.fits(free):
        return est, None
    need = f"Estimated peak {_gib(est.total)}"
    if est.required > est.total:
        need += f" (+{_gib(est.required - est.total)} CUDA context)"
    tips = suggestions(cfg)
    tip = ", ".join(tips[:-1]) + (f", or {tips[-1]}" if len(tips) > 1 else tips[0])
    return est, f"{need} but only {_gib(free)} free: {tip}."
