// Recurrent layers: an Elman RNN (tanh) and an LSTM, unrolled over the time steps into ordinary
// graph ops (linear, add, mul, sigmoid, tanh, split), so they run on both backends and autodiff
// differentiates them like any other graph (the weights are shared by every step; their
// gradients are the sums over the steps).
//
// Parameters follow PyTorch's nn.RNN / nn.LSTM (one layer), so checkpoints map one to one:
// "<name>.weight_ih_l0" [G*H, F], "<name>.weight_hh_l0" [G*H, H], "<name>.bias_ih_l0" [G*H],
// "<name>.bias_hh_l0" [G*H] with G = 1 (RNN) or 4 (LSTM, gate order i, f, g, o), all initialised
// U(-1/sqrt(H), 1/sqrt(H)) as PyTorch does.
//
//   RNN:  h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)
//   LSTM: [i, f, g, o] = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh
//         c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g),   h_t = sigmoid(o) * tanh(c_t)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kestrel/core/graph.h"

namespace kestrel::nn {

struct RecurrentOptions {
  std::int64_t hidden = 0;  // H, required
  // Initial states [N, H]. Left invalid, the layer makes graph inputs "<name>.h0" (and
  // "<name>.c0" for the LSTM) with Graph::zero_input: zeros unless filled.
  Value h0, c0;
  // LSTM: when set, the forget-gate quarter of bias_ih starts at this value and that of bias_hh
  // at 0 (Gers et al. 2000; Jozefowicz et al. 2015 recommend 1).
  std::optional<float> forget_bias;
};

struct RecurrentOutput {
  std::vector<Value> h;  // the hidden state after each step, [N, H]
  Value c;               // LSTM: the last cell state [N, H]
};

// `xs`: the input of each time step, [N, F] each (nn::unstack splits a [N, T, F] sequence).
// Raises kestrel::Error for an empty sequence, steps of different types, H <= 0, or initial
// states that are not [N, H] in the inputs' dtype.
RecurrentOutput rnn(Graph& g, const std::string& name, const std::vector<Value>& xs, const RecurrentOptions& o);
RecurrentOutput lstm(Graph& g, const std::string& name, const std::vector<Value>& xs, const RecurrentOptions& o);

}  // namespace kestrel::nn
