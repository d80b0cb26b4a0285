"""The STU computes the official ConvGRUCell equations (csmliu/STGAN models.py), checked against a
direct functional evaluation with the unit's own weights, and the Gstu wiring (state, injection)."""
import torch
import torch.nn.functional as F

from faceedit_bench.nets.stu import STU, STUStack


def reference_cell(u: STU, f_enc, state, pass_state):
    conv = lambda m, x: F.conv2d(x, m[0].weight, m[0].bias, padding=m[0].padding)  # noqa: E731
    s_hat = F.conv_transpose2d(state, u.dconv.weight, u.dconv.bias, stride=2, padding=1)
    r = torch.sigmoid(conv(u.reset_gate, torch.cat([f_enc, s_hat], 1)))
    z = torch.sigmoid(conv(u.update_gate, torch.cat([f_enc, s_hat], 1)))
    s_new = r * s_hat
    f_hat = torch.tanh(conv(u.info, torch.cat([f_enc, s_new], 1)))
    out = (1 - z) * s_hat + z * f_hat
    return out, {"stu": s_new, "gru": out, "direct": s_hat}[pass_state]


def test_stu_equations_all_state_modes():
    torch.manual_seed(0)
    f_enc, state = torch.randn(2, 5, 8, 8), torch.randn(2, 7, 4, 4)
    for mode in ("stu", "gru", "direct"):
        u = STU(5, 7, 6, kernel_size=3, pass_state=mode)
        for p in u.parameters():  # make the gates distinguishable
            p.data.normal_(0, 0.5)
        out, nxt = u(f_enc, state)
        ref_out, ref_nxt = reference_cell(u, f_enc, state, mode)
        assert out.shape == (2, 6, 8, 8)
        assert torch.allclose(out, ref_out, atol=1e-6) and torch.allclose(nxt, ref_nxt, atol=1e-6)


def test_stu_stack_wiring_and_injection():
    torch.manual_seed(0)
    enc_ch, n_attrs = [4, 8, 16, 32], 3
    stack = STUStack(enc_ch, n_attrs, dim=4, n_layers=3, inject_layers=1)
    # state into unit 0: deepest feature + attrs; unit 1: 16 (+3 injected); unit 2: 8 (no inject)
    assert [u.dconv.in_channels for u in stack.units] == [32 + 3, 16 + 3, 8]
    assert [u.info[0].out_channels for u in stack.units] == [16, 8, 4]
    zs = [torch.randn(1, c, 32 // 2**i, 32 // 2**i) for i, c in enumerate(enc_ch)]
    a = torch.randn(1, n_attrs)
    out = stack(zs, a)
    assert [o.shape[1] for o in out] == [4, 8, 16, 32] and out[-1] is zs[-1]
    # the first unit's output equals the cell applied by hand to [zs[-1], a]
    st = torch.cat([zs[-1], a.view(1, -1, 1, 1).expand(-1, -1, 4, 4)], 1)
    ref, _ = reference_cell(stack.units[0], zs[2], st, "stu")
    assert torch.allclose(out[2], ref, atol=1e-6)
