#!/bin/bash
# The runtime on a lent GPU: does the CUDA provider work, do GPU and CPU agree, how fast is it.
#
# The device machine reaches no package index and takes 64 MiB of files a call, while
# onnxruntime-gpu (CUDA 13 build) and imageio-ffmpeg unpack to 500 MB. So the packages go
# over in pieces, one device call each, on a warm machine, and this script puts them together:
#   here:   unzip onnxruntime-gpu, imageio-ffmpeg, soundfile, cffi, pycparser and pydub wheels
#           into site/, tar cf - site | xz -9 > site.tar.xz, split -b 54M -d site.tar.xz part.
#           and put part.0K in .ortK/ (ignored by git)
#   there:  one call per piece, carry [".ortK"]: mkdir -p /tmp/ortall && cp .ortK/part.* /tmp/ortall/
#           (not into the checkout: ignored folders there did not survive from call to call;
#           /tmp does while the machine stays warm, 30 s between calls)
#           then, on the same warm machine: bash scripts/gpu-speed.sh   -> $OUT/*.json, $OUT/log.txt
set -o pipefail
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
export PYTHONUNBUFFERED=1
exec > >(tee $OUT/log.txt) 2>&1
if [ ! -d /tmp/site ]; then
  ls -la /tmp/ortall
  cat /tmp/ortall/part.* | python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.stdin.buffer), sys.stdout.buffer, 1 << 20)" | tar x -C /tmp || exit 1
  chmod +x /tmp/site/imageio_ffmpeg/binaries/* 2>/dev/null
fi
export PYTHONPATH=/tmp/site:$PWD
M=mp3fix/models/mp3fix-gan.onnx
[ -f $M ] || M=models/mp3fix-gan.onnx
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc
python3 -c "import onnxruntime as o, numpy, soundfile, imageio_ffmpeg; print('onnxruntime', o.__version__, o.get_available_providers(), 'numpy', numpy.__version__, 'ffmpeg', imageio_ffmpeg.get_ffmpeg_exe())"
echo "== a plain CUDA session, no preloading (fresh process):"
python3 -c "import onnxruntime as o; print(o.InferenceSession('$M', providers=['CUDAExecutionProvider','CPUExecutionProvider']).get_providers())" 2>&1 | tail -n 2
echo "== mp3fix's Generator, --device cuda (preloads the CUDA libraries):"
python3 -c "from mp3fix.runtime import Generator; g = Generator('$M', device='cuda'); print(g.device, g.session.get_providers())" 2>&1 | tail -n 2
echo "== GPU against CPU, same input and seed:"
python3 - <<'EOF'
import sys, time
import numpy as np
sys.path.insert(0, "benchmarks")
from speed import synth_block, SR
from mp3fix.restore import Restorer
x = synth_block(0, 30 * SR)
x[:, :] = np.fft.irfft(np.fft.rfft(x) * (np.fft.rfftfreq(x.shape[1], 1 / SR) < 5500), x.shape[1])  # an MP3-like cutoff
out = {}
for dev in ("cuda", "cpu"):
    r = Restorer(None, device=dev)
    r.restore(x, SR, seed=3, variants=2)
    t = time.perf_counter(); y = r.restore(x, SR, seed=3, variants=2); dt = time.perf_counter() - t
    out[dev] = np.stack(y); print(dev, r.generator.device, f"30 s stereo, 2 variants: {dt:.2f} s")
d = out["cuda"] - out["cpu"]
print("max |gpu - cpu|", float(np.abs(d).max()), "rms", float(np.sqrt((d ** 2).mean())),
      "signal rms", float(np.sqrt((out['cpu'] ** 2).mean())))
EOF
echo "== speed.py, CUDA then CPU (all cores), same machine:"
timeout 240 python3 benchmarks/speed.py --minutes 3 --device cuda --long 30 --json $OUT/speed-cuda.json
timeout 150 python3 benchmarks/speed.py --minutes 3 --device cpu --json $OUT/speed-cpu.json
timeout 150 python3 benchmarks/speed.py --minutes 3 --device cpu --threads 2 --json $OUT/speed-cpu2.json
ls -la $OUT
