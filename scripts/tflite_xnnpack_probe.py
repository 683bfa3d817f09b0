#!/usr/bin/env python3
"""Explains why the seed's published accuracies (Big-3IN 91.28 %, Big-1IN 90.23 %) differ from
TFLite's builtin kernels (91.25 %, 90.13 %): the default interpreter hands the legacy uint8
graphs to the XNNPACK delegate, whose uint8 requantisation is single-precision float, not
TFLite's fixed-point multiplier:

    scale = f32(f32(input_scale * filter_scale) / output_scale)
    out   = round_half_even(clamp(f32(acc) * scale, lo - zp, hi - zp)) + zp

This numpy re-implementation of the seed graphs (RESHAPE / CONV_2D / MAX_POOL_2D /
CONCATENATION / FULLY_CONNECTED, uint8) with that rule reproduces the XNNPACK goldens
(seed_uci_<model>.xnnpack.u8, written by tflite_seed_goldens.py) on every window.

Usage: python3 scripts/tflite_xnnpack_probe.py [--data /work/shared/data/uci-har]
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tflite_seed_goldens as g
from ai_edge_litert import schema_py_generated as S

def load(path):
    buf=open(path,'rb').read()
    m=S.Model.GetRootAs(buf,0); sg=m.Subgraphs(0)
    T=[]
    for i in range(sg.TensorsLength()):
        t=sg.Tensors(i); b=m.Buffers(t.Buffer()).DataAsNumpy()
        q=t.Quantization()
        sc=q.ScaleAsNumpy() if q and q.ScaleLength() else None
        zp=q.ZeroPointAsNumpy() if q and q.ZeroPointLength() else None
        dt={3:np.uint8,2:np.int32,9:np.int8,0:np.float32}[t.Type()]
        data=None
        if not isinstance(b,int) and b is not None and len(b):
            data=np.frombuffer(b.tobytes(),dtype=dt).reshape(t.ShapeAsNumpy())
        T.append(dict(shape=t.ShapeAsNumpy().tolist(),scale=None if sc is None else np.float32(sc[0]),zp=None if zp is None else int(zp[0]),data=data))
    ops=[]
    for i in range(sg.OperatorsLength()):
        o=sg.Operators(i); code=m.OperatorCodes(o.OpcodeIndex()); c=max(code.BuiltinCode(),code.DeprecatedBuiltinCode())
        opt=o.BuiltinOptions(); d={}
        if c==3:
            x=S.Conv2DOptions(); x.Init(opt.Bytes,opt.Pos); d=dict(pad=x.Padding(),sw=x.StrideW(),sh=x.StrideH(),act=x.FusedActivationFunction())
        if c==17:
            x=S.Pool2DOptions(); x.Init(opt.Bytes,opt.Pos); d=dict(pad=x.Padding(),sw=x.StrideW(),sh=x.StrideH(),fw=x.FilterWidth(),fh=x.FilterHeight(),act=x.FusedActivationFunction())
        if c==9:
            x=S.FullyConnectedOptions(); x.Init(opt.Bytes,opt.Pos); d=dict(act=x.FusedActivationFunction())
        ops.append((c,[o.Inputs(j) for j in range(o.InputsLength())],[o.Outputs(j) for j in range(o.OutputsLength())],d))
    ins=[sg.Inputs(i) for i in range(sg.InputsLength())]; outs=[sg.Outputs(i) for i in range(sg.OutputsLength())]
    return T,ops,ins,outs

def requant(acc, s_in, s_w, s_out, zp, lo, hi, mode):
    if mode=='fp32':
        scale=np.float32(np.float32(s_in*s_w)/s_out)
        f=acc.astype(np.float32)*scale
        f=np.clip(f, np.float32(lo-zp), np.float32(hi-zp))
        return (np.rint(f).astype(np.int64)+zp).astype(np.int64)
    raise ValueError(f"unknown requantisation mode {mode}")

def forward(model, feeds, mode):
    T,ops,ins,outs=model
    V={}
    for i,f in zip(ins,feeds): V[i]=f.astype(np.int64).reshape([f.shape[0]]+T[i]['shape'][1:])
    for c,oi,oo,d in ops:
        out=T[oo[0]]
        if c==22:  # reshape
            V[oo[0]]=V[oi[0]].reshape([V[oi[0]].shape[0]]+out['shape'][1:]); continue
        if c==2:
            V[oo[0]]=np.concatenate([V[i] for i in oi],axis=-1); continue
        x=V[oi[0]]; xin=T[oi[0]]
        lo,hi=0,255
        if c==3:
            w=T[oi[1]]; b=T[oi[2]]['data'].astype(np.int64)
            W=w['data'].astype(np.int64)-w['zp']  # O,KH,KW,I
            X=x-xin['zp']
            N,H,Wd,C=X.shape; O,KH,KW,I=W.shape
            assert d['sh']==1 and d['sw']==1 and d['pad']==0
            ph=(KH-1)//2; pw=(KW-1)//2
            Xp=np.pad(X,((0,0),(ph,KH-1-ph),(pw,KW-1-pw),(0,0)))
            acc=np.zeros((N,H,Wd,O),dtype=np.int64)
            for kh in range(KH):
                for kw in range(KW):
                    acc+=np.einsum('nhwi,oi->nhwo',Xp[:,kh:kh+H,kw:kw+Wd,:],W[:,kh,kw,:])
            acc+=b
            if d['act']==1: lo=max(lo,out['zp'])
            V[oo[0]]=requant(acc,xin['scale'],w['scale'],out['scale'],out['zp'],lo,hi,mode)
        elif c==17:
            N,H,Wd,C=x.shape; fh,fw=d['fh'],d['fw']; assert d['pad']==1 or True
            oh,ow=out['shape'][1],out['shape'][2]
            r=x[:,:oh*fh,:ow*fw,:].reshape(N,oh,fh,ow,fw,C).max(axis=(2,4))
            V[oo[0]]=r
        elif c==9:
            w=T[oi[1]]; b=T[oi[2]]['data'].astype(np.int64)
            X=x.reshape(x.shape[0],-1)-xin['zp']; W=w['data'].astype(np.int64)-w['zp']
            acc=X@W.T+b
            V[oo[0]]=requant(acc,xin['scale'],w['scale'],out['scale'],out['zp'],lo,hi,mode)
        else: raise Exception(c)
    return V[outs[0]].reshape(V[outs[0]].shape[0],-1)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/data/uci-har")
    ap.add_argument("--models", default="/work/shared/seed-models")
    args = ap.parse_args()
    goldens = os.path.join(g.OUT)
    x, y = g.load_split(args.data)
    q = g.seed_scale(x)
    s1, s2, s3 = q[..., 0:3], q[..., 3:6], q[..., 6:9]
    cases = [("B_s123_3IN_91", [s1, s2, s3]), ("B_s123_1IN_91", [q])] + [(f"S{k}_s3", [s3]) for k in range(6)]
    for name, feeds in cases:
        o = forward(load(os.path.join(args.models, f"{name}.tflite")), feeds, "fp32")
        gx = np.fromfile(os.path.join(goldens, f"seed_uci_{name}.xnnpack.u8"), np.uint8).reshape(o.shape[0], -1)
        gb = np.fromfile(os.path.join(goldens, f"seed_uci_{name}.u8"), np.uint8).reshape(o.shape[0], -1)
        line = f"{name}: windows differing from XNNPACK {(o != gx).any(1).sum()}, from builtin kernels {(o != gb).any(1).sum()}"
        if name.startswith("B_"):
            line += f", accuracy {100 * (o.argmax(1) == y).mean():.2f} %"
        print(line)


if __name__ == "__main__":
    main()
