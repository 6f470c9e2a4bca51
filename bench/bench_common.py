"Shared by the benchmarks: the machine, named, and device synchronisation for honest timings."
import platform
import torch

def hardware(device='cpu') -> str:
    "The machine a benchmark ran on: CPU model and threads, or the GPU; and the torch version."
    if torch.device(device).type == 'cuda': return f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda}), torch {torch.__version__}"
    try: cpu = next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except (OSError, StopIteration): cpu = platform.processor() or platform.machine()
    flags = ''
    try:
        fl = next(l for l in open('/proc/cpuinfo') if l.startswith('flags')).split()
        flags = ', ' + ' '.join(f for f in ('avx2', 'avx512f', 'avx512_bf16', 'amx_bf16') if f in fl)
    except (OSError, StopIteration): pass
    return f"{cpu}{flags}, {torch.get_num_threads()} thread(s), torch {torch.__version__}"

def sync(device='cpu'):
    "Wait for the device's queued work (CUDA runs asynchronously)."
    if torch.device(device).type == 'cuda': torch.cuda.synchronize()
