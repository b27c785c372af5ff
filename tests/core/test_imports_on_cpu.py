"""sspo_verl.core is framework-free: importable with verl, ray, hydra and omegaconf blocked."""

import subprocess
import sys


def test_core_imports_without_verl_ray_hydra_omegaconf():
    code = (
        "import sys\n"
        "for name in ('verl', 'ray', 'hydra', 'omegaconf'):\n"
        "    sys.modules[name] = None\n"
        "import sspo_verl.core as core\n"
        "import sspo_verl.core.segmentation, sspo_verl.core.ratio, sspo_verl.core.clip_bounds\n"
        "import sspo_verl.core.loss, sspo_verl.core.advantage\n"
        "assert not any(m.split('.')[0] in ('verl', 'ray', 'hydra', 'omegaconf') and sys.modules[m] is not None\n"
        "               for m in list(sys.modules))\n"
        "print('ok', len(core.__all__))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok ")
