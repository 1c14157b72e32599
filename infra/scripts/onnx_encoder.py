"""Running a Shopmind encoder directory's graph from Python (numpy + onnxruntime), pooled as
the Rust encoder pools: what the trainer and the benchmark baselines share."""

from __future__ import annotations


def pooled(sess, manifest: dict, ids, mask, types=None):
    """Unit vectors [batch, dim] for one padded batch (ids, mask: int64 [batch, seq])."""
    import numpy as np

    feed = {"input_ids": ids, "attention_mask": mask}
    if any(i.name == "token_type_ids" for i in sess.get_inputs()):
        feed["token_type_ids"] = np.zeros_like(ids) if types is None else types
    if manifest["encoder"]["pooling"] == "graph":
        vec = sess.run(None, feed)[0]
    else:
        hidden = sess.run(["last_hidden_state"], feed)[0]
        m = mask[:, :, None].astype(np.float32)
        if manifest["encoder"]["pooling"] == "cls":
            vec = hidden[:, 0, :]
        else:
            vec = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    return vec / np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)
