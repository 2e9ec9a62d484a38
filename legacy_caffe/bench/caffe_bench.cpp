// Legacy Caffe timings without Python: what bench/e2e_worker.py and bench/train_worker.py time through pycaffe,
// for hosts whose Python cannot load our pycaffe build (legacy_caffe/bench/bundle.sh makes it self-contained).
//
//   caffe_bench forward --model DEPLOY --weights W --input data=X.npy [--save BLOB=OUT.npy] [--warmup N] [--reps N]
//   caffe_bench step --solver SOLVER --weights W --input data=X.npy --input label=Y.npy [--warmup N] [--reps N]
//
// forward times Net::Forward, step times SGDSolver::Step(1), `reps` times after `warmup` untimed calls. Prints one
// line `RESULT {"seconds": [...], "peak_rss": bytes, "outputs": {name: value}}` (outputs: the net's scalar output
// blobs after the last call); a float32 .npy input must have the blob's shape or, for a deploy's 1-image input,
// that shape with more images (the first are taken). Bad arguments or files: one `caffe_bench: error: ...` line on
// stderr and exit 2. Caffe logs through glog (GLOG_minloglevel=2 keeps it quiet).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "caffe/caffe.hpp"
#include "caffe/sgd_solvers.hpp"

namespace {

struct Usage : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Args {
  std::string command, model, solver, weights;
  std::vector<std::pair<std::string, std::string>> inputs, saves;
  int warmup = 1;
  int reps = 3;
};

// "NAME=PATH" -> (NAME, PATH).
std::pair<std::string, std::string> named_path(const std::string& flag, const std::string& value) {
  const auto eq = value.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == value.size()) {
    throw Usage(flag + " wants NAME=PATH, got '" + value + "'");
  }
  return {value.substr(0, eq), value.substr(eq + 1)};
}

int count_flag(const std::string& flag, const std::string& value) {
  char* end = nullptr;
  const long n = std::strtol(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || n < 0 || n > 1000000) throw Usage(flag + " wants a count, got '" + value + "'");
  return static_cast<int>(n);
}

Args parse(int argc, char** argv) {
  if (argc < 2) throw Usage("usage: caffe_bench forward|step [flags] (see the top of caffe_bench.cpp)");
  Args args;
  args.command = argv[1];
  if (args.command != "forward" && args.command != "step") throw Usage("unknown command '" + args.command + "'");
  for (int i = 2; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) throw Usage(flag + " needs a value");
    const std::string value = argv[i + 1];
    if (flag == "--model") args.model = value;
    else if (flag == "--solver") args.solver = value;
    else if (flag == "--weights") args.weights = value;
    else if (flag == "--input") args.inputs.push_back(named_path(flag, value));
    else if (flag == "--save") args.saves.push_back(named_path(flag, value));
    else if (flag == "--warmup") args.warmup = count_flag(flag, value);
    else if (flag == "--reps") args.reps = count_flag(flag, value);
    else throw Usage("unknown flag " + flag);
  }
  const bool forward = args.command == "forward";
  const std::string& wanted = forward ? args.model : args.solver;
  const std::string& other = forward ? args.solver : args.model;
  if (wanted.empty()) throw Usage(forward ? "forward needs --model" : "step needs --solver");
  if (!other.empty()) throw Usage(forward ? "--solver is for step" : "--model is for forward");
  if (args.weights.empty()) throw Usage("--weights is required");
  if (args.reps < 1) throw Usage("--reps must be at least 1");
  return args;
}

void require_file(const std::string& what, const std::string& path) {
  if (!std::ifstream(path, std::ios::binary)) throw Usage(what + " " + path + ": cannot be read");
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << '(';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ')';
  return out.str();
}

// The value of `key` in a .npy header dict, up to the next top-level comma or closing brace.
std::string header_field(const std::string& header, const std::string& key, const std::string& path) {
  const auto at = header.find("'" + key + "':");
  if (at == std::string::npos) throw Usage(path + ": not a .npy file (no '" + key + "' in its header)");
  auto start = at + key.size() + 3;
  while (start < header.size() && header[start] == ' ') ++start;
  const auto stop = header[start] == '(' ? header.find(')', start) + 1 : header.find_first_of(",}", start);
  return header.substr(start, stop - start);
}

struct Npy {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

// A little-endian float32 C-order .npy file (what numpy.save writes for such arrays).
Npy read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Usage("input " + path + ": cannot be read");
  char magic[8];
  if (!in.read(magic, 8) || std::string(magic, 6) != "\x93NUMPY") throw Usage(path + ": not a .npy file");
  uint32_t length = 0;
  unsigned char bytes[4] = {0, 0, 0, 0};
  const int width = magic[6] == 1 ? 2 : 4;
  if (!in.read(reinterpret_cast<char*>(bytes), width)) throw Usage(path + ": truncated .npy header");
  for (int i = width - 1; i >= 0; --i) length = length * 256 + bytes[i];
  std::string header(length, '\0');
  if (!in.read(&header[0], length)) throw Usage(path + ": truncated .npy header");
  const std::string descr = header_field(header, "descr", path);
  if (descr != "'<f4'") throw Usage(path + ": dtype " + descr + ", caffe_bench reads float32 ('<f4') arrays only");
  if (header_field(header, "fortran_order", path) != "False") throw Usage(path + ": Fortran-ordered array");
  Npy npy;
  std::istringstream dims(header_field(header, "shape", path));
  char c;
  dims >> c;
  int64_t dim;
  while (dims >> dim) {
    npy.shape.push_back(dim);
    dims >> c;
  }
  int64_t count = 1;
  for (int64_t d : npy.shape) count *= d;
  npy.data.resize(count);
  if (!in.read(reinterpret_cast<char*>(npy.data.data()), count * 4)) {
    throw Usage(path + ": truncated (" + shape_text(npy.shape) + " float32 values announced)");
  }
  return npy;
}

void write_npy(const std::string& path, const caffe::Blob<float>& blob) {
  std::ostringstream dict;
  dict << "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  for (int d : blob.shape()) dict << d << ", ";
  dict << "), }";
  std::string header = dict.str();
  header.append(63 - (10 + header.size()) % 64, ' ');  // the data starts 64-byte aligned
  header += '\n';
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    const unsigned char length[2] = {static_cast<unsigned char>(header.size() & 255),
                                     static_cast<unsigned char>(header.size() >> 8)};
    out.write("\x93NUMPY\x01\x00", 8);
    out.write(reinterpret_cast<const char*>(length), 2);
    out << header;
    out.write(reinterpret_cast<const char*>(blob.cpu_data()), static_cast<std::streamsize>(blob.count()) * 4);
    if (!out) throw std::runtime_error("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("cannot rename " + tmp + " to " + path);
}

caffe::Blob<float>& named_blob(caffe::Net<float>& net, const std::string& name) {
  if (!net.has_blob(name)) throw Usage("the net has no blob '" + name + "'");
  return *net.blob_by_name(name);
}

// Copy a .npy array into the blob: the same shape, or more images of it (the first are taken).
void fill(caffe::Net<float>& net, const std::string& name, const std::string& path, const Npy& npy) {
  caffe::Blob<float>& blob = named_blob(net, name);
  std::vector<int64_t> want(blob.shape().begin(), blob.shape().end());
  const bool same_item = npy.shape.size() == want.size() && !want.empty() &&
                         std::equal(want.begin() + 1, want.end(), npy.shape.begin() + 1) && npy.shape[0] >= want[0];
  if (!same_item) {
    throw Usage("input " + name + " from " + path + ": shape " + shape_text(npy.shape) + " does not fit the blob's " +
                shape_text(want));
  }
  std::copy_n(npy.data.begin(), blob.count(), blob.mutable_cpu_data());
}

int64_t peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::strtoll(line.c_str() + 6, nullptr, 10) * 1024;
  }
  return -1;
}

std::vector<double> time_calls(const std::function<void()>& call, int warmup, int reps) {
  for (int i = 0; i < warmup; ++i) call();
  std::vector<double> seconds;
  for (int i = 0; i < reps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    call();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return seconds;
}

void print_result(const std::vector<double>& seconds, caffe::Net<float>& net) {
  std::printf("RESULT {\"seconds\": [");
  for (size_t i = 0; i < seconds.size(); ++i) std::printf("%s%.9g", i ? ", " : "", seconds[i]);
  std::printf("], \"peak_rss\": %lld, \"outputs\": {", static_cast<long long>(peak_rss_bytes()));
  const char* sep = "";
  for (int index : net.output_blob_indices()) {
    const caffe::Blob<float>& blob = *net.blobs()[index];
    if (blob.count() != 1) continue;
    std::printf("%s\"%s\": %.17g", sep, net.blob_names()[index].c_str(), blob.cpu_data()[0]);  // exact
    sep = ", ";
  }
  std::printf("}}\n");
  std::fflush(stdout);
}

int run(const Args& args) {
  caffe::Caffe::set_mode(caffe::Caffe::CPU);
  require_file("weights", args.weights);
  std::vector<Npy> arrays;  // read (and checked) before the net is built, which takes seconds
  for (const auto& input : args.inputs) arrays.push_back(read_npy(input.second));
  std::unique_ptr<caffe::Net<float>> deploy;
  std::unique_ptr<caffe::SGDSolver<float>> solver;
  caffe::Net<float>* net;
  std::function<void()> call;
  if (args.command == "forward") {
    require_file("model", args.model);
    deploy.reset(new caffe::Net<float>(args.model, caffe::TEST));
    net = deploy.get();
    call = [net] { net->Forward(); };
  } else {
    require_file("solver", args.solver);
    solver.reset(new caffe::SGDSolver<float>(args.solver));
    net = solver->net().get();
    call = [&solver] { solver->Step(1); };
  }
  net->CopyTrainedLayersFrom(args.weights);
  for (size_t i = 0; i < args.inputs.size(); ++i) fill(*net, args.inputs[i].first, args.inputs[i].second, arrays[i]);
  for (const auto& save : args.saves) named_blob(*net, save.first);
  const std::vector<double> seconds = time_calls(call, args.warmup, args.reps);
  for (const auto& save : args.saves) write_npy(save.second, named_blob(*net, save.first));
  print_result(seconds, *net);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "caffe_bench: error: %s\n", e.what());
    return 2;
  }
}
