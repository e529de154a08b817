"""H-module measurements on one GPU: decode check overhead, prefill(last_only), generate, SWA ring decode."""
import importlib.util, json, statistics, sys, time
import torch

torch.manual_seed(0)
dev = "cuda"
R = {}

def load(name):
    spec = importlib.util.spec_from_file_location(name, f"hbench_tmp/{name}.py")
    m = importlib.util.module_from_spec(spec); sys.modules[name] = m; spec.loader.exec_module(m); return m

def timed(fn, reps=5):
    out = []
    for _ in range(reps):
        torch.cuda.synchronize(); t = time.perf_counter(); fn(); torch.cuda.synchronize(); out.append(time.perf_counter() - t)
    return statistics.median(out)

def cache_bytes(c):
    return sum(t.numel() * t.element_size() for k, t in c.items() if k != "pos")

@torch.no_grad()
def main():
    lf = {}
    for name in ("lfm2", "lfm2_nocheck"):
        mod = load(name)
        torch.manual_seed(0)
        with torch.device(dev):
            lf[name] = mod.LFM2_350M().eval()
    model = lf["lfm2"]
    R["lfm2_param_dtype"] = str(next(model.parameters()).dtype)
    ids = torch.randint(0, 65536, (1, 2048), device=dev)
    for name, m in lf.items():
        cache = m.init_cache(1, 1024)
        m.prefill(ids[:, :512], cache)
        tok = ids[:, 512:513]
        def run():
            cache["pos"].fill_(512)
            for _ in range(128):
                m.decode_step(tok, cache)
        run()
        R[f"{name}_eager_decode_ms_per_token"] = timed(run, 3) / 128 * 1e3
    for last in (False, True):
        cache = model.init_cache(1, 2048)
        model.prefill(ids, cache, last_only=last)
        torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
        model.prefill(ids, cache, last_only=last)
        torch.cuda.synchronize(); R[f"prefill2048_last_only={last}_peak_MiB_above"] = (torch.cuda.max_memory_allocated() - base) / 2**20
        R[f"prefill2048_last_only={last}_ms"] = timed(lambda: model.prefill(ids, cache, last_only=last)) * 1e3
    model.generate(ids[:, :512], 8, temperature=0)
    t = timed(lambda: model.generate(ids[:, :512], 256, temperature=0), 2)
    R["lfm2_generate_512+256_greedy_s"] = t
    t = timed(lambda: model.generate(ids[:, :512], 256, temperature=0.8, top_k=50, top_p=0.95,
                                      generator=torch.Generator(dev).manual_seed(0)), 2)
    R["lfm2_generate_512+256_topk_topp_s"] = t
    del lf, model; torch.cuda.empty_cache()

    swa, full = load("swa"), load("full")
    with torch.device(dev):
        s = swa.SWABig().eval(); f = full.FullBig().eval()
    ids = torch.randint(0, 32768, (1, 4096), device=dev)
    cs = s.init_cache(1, 512)
    R["swa_capacity_at_max_len_512"] = s.capacity(cs)
    R["swa_cache_MiB"] = cache_bytes(cs) / 2**20
    s.prefill(ids[:, :256], cs)
    times = []
    for t in range(256, 3072):
        torch.cuda.synchronize(); t0 = time.perf_counter()
        s.decode_step(ids[:, t:t+1], cs)
        torch.cuda.synchronize(); times.append(time.perf_counter() - t0)
    R["swa_decode_ms_pos_256_512"] = statistics.median(times[:256]) * 1e3
    R["swa_decode_ms_pos_2816_3072"] = statistics.median(times[-256:]) * 1e3
    # correctness on GPU, past max_len: forward over 1024 tokens vs prefill(100) + decode to 1024 with max_len 512
    seq = ids[:, :1024]
    full_logits = s(seq).logits.float()
    c2 = s.init_cache(1, 512)
    d = (s.prefill(seq[:, :100], c2).float() - full_logits[:, :100]).abs().max().item()
    for t in range(100, 1024):
        d = max(d, (s.decode_step(seq[:, t:t+1], c2)[:, 0].float() - full_logits[:, t]).abs().max().item())
    R["swa_bf16_decode_past_max_len_vs_forward_max_abs"] = d
    R["swa_bf16_logit_scale"] = full_logits.abs().max().item()
    cf = f.init_cache(1, 3072)
    R["full_cache_MiB_at_3072"] = cache_bytes(cf) / 2**20
    f.prefill(ids[:, :2816], cf)
    times = []
    for t in range(2816, 3072):
        torch.cuda.synchronize(); t0 = time.perf_counter()
        f.decode_step(ids[:, t:t+1], cf)
        torch.cuda.synchronize(); times.append(time.perf_counter() - t0)
    R["full_decode_ms_pos_2816_3072"] = statistics.median(times) * 1e3
    R["device"] = torch.cuda.get_device_name(); R["torch"] = torch.__version__
    print(json.dumps(R, indent=1))

main()
