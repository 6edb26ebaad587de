"fastai's distributed training works with vit_learner: 2 CPU processes (gloo) end one epoch with identical weights."
import os, subprocess, sys
import torch
from vitzoo.data import digits_folder

def test_two_process_training_ends_with_identical_weights(tmp_path):
    data = digits_folder(tmp_path/'digits', n_per_class=8, valid_pct=0.25)
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
           os.path.join(os.path.dirname(__file__), 'distrib_train.py'), str(tmp_path), str(data)]
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'OMP_NUM_THREADS': '1'}
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path/f'rank{i}.pt', weights_only=False) for i in (0, 1))
    assert (r0['world'], r1['world']) == (2, 2)
    assert (r0['rank'], r1['rank']) == (0, 1)
    assert r0['backend'] == 'gloo'
    assert r0['state'].keys() == r1['state'].keys()
    for k in r0['state']: assert torch.equal(r0['state'][k], r1['state'][k]), k
    changed = [k for k in r0['state'] if not torch.equal(r0['state'][k], r0['init'][k])]
    assert len(changed) > len(r0['state']) // 2, 'training did not update the weights'
