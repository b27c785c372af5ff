"""sspo_verl.core is framework-free: every module in it imports with verl, ray, hydra and omegaconf blocked."""

import subprocess
import sys


def test_every_core_module_imports_without_verl_ray_hydra_omegaconf():
    code = (
        "import importlib, pkgutil, sys\n"
        "for name in ('verl', 'ray', 'hydra', 'omegaconf'):\n"
        "    sys.modules[name] = None\n"
        "import sspo_verl.core as core\n"
        "names = [m.name for m in pkgutil.iter_modules(core.__path__, 'sspo_verl.core.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "assert not any(m.split('.')[0] in ('verl', 'ray', 'hydra', 'omegaconf') and sys.modules[m] is not None\n"
        "               for m in list(sys.modules))\n"
        "print('ok', ' '.join(sorted(names)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    imported = out.stdout.split()
    assert imported[0] == "ok" and "sspo_verl.core.diagnostics" in imported and "sspo_verl.core.loss" in imported
