// Safetensors reader (validating, zero-copy over an mmap or a caller's buffer), atomic streaming writer and
// multi-file checkpoint directories.
//
// File layout: u64 little-endian header length N, N bytes of JSON header, then the data section. The header maps
// tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the data section) and may
// hold a "__metadata__" object of strings.
#include "codec/safetensors.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>

#include "common/error.h"
#include "common/file_util.h"

namespace ecf8 {
namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
constexpr size_t kWriteBufferBytes = 1 << 20;
constexpr const char* kMetadataKey = "__metadata__";
constexpr const char* kIndexFile = "model.safetensors.index.json";

std::string errno_text(int err) { return std::generic_category().message(err); }

std::string file_ctx(const std::string& label) { return "safetensors '" + label + "'"; }

std::string tensor_ctx(const std::string& label, const std::string& name) {
    return file_ctx(label) + ", tensor '" + name + "'";
}

uint64_t read_u64_le(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

// numel * dtype_size, or false on overflow. A zero dimension makes the product zero whatever the others are.
bool checked_byte_size(const std::vector<int64_t>& shape, DType dtype, uint64_t* out) {
    uint64_t n = 1;
    bool zero = std::any_of(shape.begin(), shape.end(), [](int64_t d) { return d == 0; });
    if (zero) {
        *out = 0;
        return true;
    }
    for (int64_t d : shape) {
        if (d < 0 || n > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(d)) return false;
        n *= static_cast<uint64_t>(d);
    }
    uint64_t size = dtype_size(dtype);
    if (n > std::numeric_limits<uint64_t>::max() / size) return false;
    *out = n * size;
    return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Header parsing

// Parses the header JSON. nlohmann silently keeps the last of duplicate object keys, so a parser callback records
// the keys of every open object and the first duplicate is reported as an error.
json parse_header_json(std::string_view text, const std::string& label) {
    std::vector<std::set<std::string>> open_objects;
    std::string duplicate;
    bool duplicate_at_top = false;
    auto callback = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
        if (event == json::parse_event_t::object_start) {
            open_objects.emplace_back();
        } else if (event == json::parse_event_t::object_end && !open_objects.empty()) {
            open_objects.pop_back();
        } else if (event == json::parse_event_t::key && !open_objects.empty() && duplicate.empty()) {
            const auto& key = parsed.get_ref<const std::string&>();
            if (!open_objects.back().insert(key).second) {
                duplicate = key;
                duplicate_at_top = open_objects.size() == 1;
            }
        }
        return true;
    };
    json header;
    try {
        header = json::parse(text.begin(), text.end(), callback);
    } catch (const json::exception& e) {
        ECF8_FAIL(file_ctx(label) << ": header is not valid JSON: " << e.what());
    }
    ECF8_CHECK(duplicate.empty(), file_ctx(label) << ": duplicate " << (duplicate_at_top ? "tensor name" : "key")
                                                  << " '" << duplicate << "' in header");
    ECF8_CHECK(header.is_object(), file_ctx(label) << ": header is not a JSON object");
    return header;
}

// A JSON integer that must be >= 0 and fit in int64.
uint64_t get_nonnegative(const json& v, const std::string& ctx, const char* what) {
    ECF8_CHECK(v.is_number_integer(), ctx << ": " << what << " must be an integer, got " << v.type_name());
    if (v.is_number_unsigned()) {
        uint64_t u = v.get<uint64_t>();
        ECF8_CHECK(u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
                   ctx << ": " << what << " " << u << " is too large");
        return u;
    }
    int64_t s = v.get<int64_t>();
    ECF8_CHECK(s >= 0, ctx << ": negative " << what << " " << s);
    return static_cast<uint64_t>(s);
}

std::vector<int64_t> parse_shape(const json& j, const std::string& ctx) {
    ECF8_CHECK(j.is_array(), ctx << ": 'shape' must be an array of integers, got " << j.type_name());
    std::vector<int64_t> shape;
    shape.reserve(j.size());
    for (const json& d : j) shape.push_back(static_cast<int64_t>(get_nonnegative(d, ctx, "shape dimension")));
    return shape;
}

const json& required_field(const json& entry, const char* key, const std::string& ctx) {
    auto it = entry.find(key);
    ECF8_CHECK(it != entry.end(), ctx << ": missing '" << key << "'");
    return *it;
}

TensorInfo parse_entry(const std::string& name, const json& entry, uint64_t data_size, const std::string& label) {
    const std::string ctx = tensor_ctx(label, name);
    ECF8_CHECK(entry.is_object(), ctx << ": header entry must be an object, got " << entry.type_name());
    TensorInfo t;
    t.name = name;
    const json& dtype = required_field(entry, "dtype", ctx);
    ECF8_CHECK(dtype.is_string(), ctx << ": 'dtype' must be a string, got " << dtype.type_name());
    try {
        t.dtype = dtype_from_name(dtype.get<std::string>());
    } catch (const Error& e) {
        ECF8_FAIL(ctx << ": " << e.what());
    }
    t.shape = parse_shape(required_field(entry, "shape", ctx), ctx);
    const json& offsets = required_field(entry, "data_offsets", ctx);
    ECF8_CHECK(offsets.is_array() && offsets.size() == 2, ctx << ": 'data_offsets' must be [begin, end]");
    t.begin = get_nonnegative(offsets[0], ctx, "data offset");
    t.end = get_nonnegative(offsets[1], ctx, "data offset");
    ECF8_CHECK(t.begin <= t.end, ctx << ": data_offsets [" << t.begin << ", " << t.end << "] has begin > end");
    ECF8_CHECK(t.end <= data_size,
               ctx << ": data_offsets end " << t.end << " is beyond the data section (" << data_size << " bytes)");
    uint64_t expected = 0;
    ECF8_CHECK(checked_byte_size(t.shape, t.dtype, &expected), ctx << ": byte size of the shape overflows");
    ECF8_CHECK(t.nbytes() == expected, ctx << ": data_offsets span " << t.nbytes() << " bytes but "
                                           << dtype_name(t.dtype) << " shape needs " << expected);
    return t;
}

std::map<std::string, std::string> parse_metadata(const json& j, const std::string& label) {
    ECF8_CHECK(j.is_object(), file_ctx(label) << ": '__metadata__' must be an object, got " << j.type_name());
    std::map<std::string, std::string> out;
    for (const auto& [key, value] : j.items()) {
        ECF8_CHECK(value.is_string(), file_ctx(label) << ": '__metadata__' value of '" << key
                                                      << "' must be a string, got " << value.type_name());
        out.emplace(key, value.get<std::string>());
    }
    return out;
}

// Sorts by offset and rejects two non-empty byte ranges that intersect.
void sort_and_check_overlap(std::vector<TensorInfo>& tensors, const std::string& label) {
    std::sort(tensors.begin(), tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
        return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
    });
    const TensorInfo* last = nullptr;  // the non-empty tensor reaching furthest so far
    for (const TensorInfo& t : tensors) {
        if (t.nbytes() == 0) continue;
        ECF8_CHECK(last == nullptr || t.begin >= last->end,
                   file_ctx(label) << ": tensors '" << last->name << "' and '" << t.name << "' overlap");
        last = &t;
    }
}

}  // namespace

uint64_t TensorInfo::numel() const {
    uint64_t n = 1;
    for (int64_t d : shape) n *= static_cast<uint64_t>(d);
    return n;
}

// ---------------------------------------------------------------------------------------------------------------
// SafetensorsFile

SafetensorsFile SafetensorsFile::open(const std::string& path) {
    MappedFile map = MappedFile::open(path);
    SafetensorsFile file = parse(std::span<const uint8_t>(map.data(), map.size()), path);
    file.map_ = std::move(map);  // moving the mapping keeps its address, so data_ stays valid
    return file;
}

SafetensorsFile SafetensorsFile::parse(std::span<const uint8_t> bytes, const std::string& label) {
    const uint64_t size = bytes.size();
    ECF8_CHECK(size >= 8, file_ctx(label) << ": file is " << size << " bytes, shorter than the 8-byte header length");
    const uint64_t header_len = read_u64_le(bytes.data());
    ECF8_CHECK(header_len <= kMaxHeaderBytes, file_ctx(label)
                                                  << ": header length " << header_len << " exceeds the 100 MiB limit");
    ECF8_CHECK(header_len <= size - 8, file_ctx(label) << ": header length " << header_len
                                                       << " is larger than the file (" << size << " bytes)");
    const char* text = reinterpret_cast<const char*>(bytes.data() + 8);
    ECF8_CHECK(header_len > 0 && text[0] == '{', file_ctx(label) << ": header does not start with '{'");
    json header = parse_header_json(std::string_view(text, header_len), label);

    SafetensorsFile file;
    file.path_ = label;
    file.file_size_ = size;
    file.data_offset_ = 8 + header_len;
    file.data_size_ = size - file.data_offset_;
    file.data_ = bytes.data() + file.data_offset_;
    for (const auto& [key, value] : header.items()) {
        if (key == kMetadataKey) {
            file.metadata_ = parse_metadata(value, label);
        } else {
            file.tensors_.push_back(parse_entry(key, value, file.data_size_, label));
        }
    }
    sort_and_check_overlap(file.tensors_, label);
    for (size_t i = 0; i < file.tensors_.size(); ++i) file.index_.emplace(file.tensors_[i].name, i);
    return file;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& SafetensorsFile::get(const std::string& name) const {
    const TensorInfo* t = find(name);
    ECF8_CHECK(t != nullptr, file_ctx(path_) << ": no tensor named '" << name << "'");
    return *t;
}

const uint8_t* SafetensorsFile::tensor_data(const TensorInfo& info) const {
    ECF8_CHECK(info.begin <= info.end && info.end <= data_size_,
               tensor_ctx(path_, info.name) << ": byte range is outside this file's data section");
    return data_ + info.begin;
}

// ---------------------------------------------------------------------------------------------------------------
// SafetensorsWriter

SafetensorsWriter::SafetensorsWriter(std::string path) : path_(std::move(path)), tmp_path_(path_ + ".tmp") {
    check_output_path(path_);  // before the caller encodes anything
}

SafetensorsWriter::~SafetensorsWriter() {
    if (file_ != nullptr) {
        std::fclose(file_);
        std::remove(tmp_path_.c_str());
    }
}

void SafetensorsWriter::check_open(const char* what) const {
    ECF8_CHECK(!finished_, file_ctx(path_) << ": " << what << " after finish()");
    ECF8_CHECK(!failed_, file_ctx(path_) << ": " << what << " after an earlier write failure");
}

void SafetensorsWriter::set_metadata(std::map<std::string, std::string> metadata) {
    check_open("set_metadata");
    ECF8_CHECK(!header_written_, file_ctx(path_) << ": set_metadata after write_header()");
    metadata_ = std::move(metadata);
}

void SafetensorsWriter::add_tensor(const std::string& name, DType dtype, std::vector<int64_t> shape, uint64_t nbytes) {
    const std::string ctx = tensor_ctx(path_, name);
    check_open("add_tensor");
    ECF8_CHECK(!header_written_, ctx << ": add_tensor after write_header()");
    ECF8_CHECK(name != kMetadataKey, ctx << ": the name is reserved");
    ECF8_CHECK(positions_.emplace(name, entries_.size()).second, ctx << ": tensor added twice");
    for (int64_t d : shape) ECF8_CHECK(d >= 0, ctx << ": negative shape dimension " << d);
    uint64_t expected = 0;
    ECF8_CHECK(checked_byte_size(shape, dtype, &expected), ctx << ": byte size of the shape overflows");
    ECF8_CHECK(nbytes == expected,
               ctx << ": nbytes " << nbytes << " but " << dtype_name(dtype) << " shape needs " << expected);
    entries_.push_back(Entry{name, dtype, std::move(shape), nbytes});
}

std::string SafetensorsWriter::build_header() const {
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata_.empty()) header[kMetadataKey] = metadata_;
    uint64_t offset = 0;
    for (const Entry& e : entries_) {
        nlohmann::ordered_json entry = nlohmann::ordered_json::object();
        entry["dtype"] = dtype_name(e.dtype);
        entry["shape"] = e.shape;
        entry["data_offsets"] = {offset, offset + e.nbytes};
        header[e.name] = std::move(entry);
        offset += e.nbytes;
    }
    std::string text;
    try {
        text = header.dump();
    } catch (const nlohmann::json::exception& e) {
        ECF8_FAIL(file_ctx(path_) << ": cannot encode header (names and metadata must be UTF-8): " << e.what());
    }
    text.resize((text.size() + 7) / 8 * 8, ' ');  // pad so the data section starts 8-byte aligned
    return text;
}

void SafetensorsWriter::write_header() {
    check_open("write_header");
    ECF8_CHECK(!header_written_, file_ctx(path_) << ": write_header called twice");
    std::string header = build_header();
    buffer_ = std::make_unique<char[]>(kWriteBufferBytes);
    file_ = std::fopen(tmp_path_.c_str(), "wb");
    if (file_ == nullptr) {
        int err = errno;
        failed_ = true;
        ECF8_FAIL(file_ctx(path_) << ": cannot create '" << tmp_path_ << "': " << errno_text(err));
    }
    std::setvbuf(file_, buffer_.get(), _IOFBF, kWriteBufferBytes);
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(header.size() >> (8 * i));
    write_bytes(len, sizeof(len));
    write_bytes(header.data(), header.size());
    header_written_ = true;
}

void SafetensorsWriter::write_bytes(const void* data, size_t n) {
    if (n == 0) return;
    if (std::fwrite(data, 1, n, file_) != n) {
        int err = errno;
        failed_ = true;
        ECF8_FAIL(file_ctx(path_) << ": write to '" << tmp_path_ << "' failed: " << errno_text(err));
    }
}

void SafetensorsWriter::write_data(const std::string& name, const void* data, uint64_t nbytes) {
    const std::string ctx = tensor_ctx(path_, name);
    check_open("write_data");
    ECF8_CHECK(header_written_, ctx << ": write_data before write_header()");
    auto it = positions_.find(name);
    ECF8_CHECK(it != positions_.end(), ctx << ": write_data for a tensor that was not declared");
    ECF8_CHECK(it->second >= current_, ctx << ": already written; tensors must be written in declaration order");
    // Move past completed tensors (including empty ones never written) until `name` is current.
    for (; current_ < it->second; ++current_, written_ = 0) {
        const Entry& cur = entries_[current_];
        ECF8_CHECK(written_ == cur.nbytes, ctx << ": written out of order; tensor '" << cur.name << "' has only "
                                               << written_ << " of " << cur.nbytes << " bytes");
    }
    const Entry& cur = entries_[current_];
    ECF8_CHECK(nbytes <= cur.nbytes - written_,
               ctx << ": " << written_ + nbytes << " bytes written, more than the declared " << cur.nbytes);
    write_bytes(data, nbytes);
    written_ += nbytes;
}

void SafetensorsWriter::finish() {
    check_open("finish");
    if (!header_written_) write_header();
    for (size_t i = current_; i < entries_.size(); ++i) {
        uint64_t done = i == current_ ? written_ : 0;
        ECF8_CHECK(done == entries_[i].nbytes, tensor_ctx(path_, entries_[i].name)
                                                   << ": only " << done << " of " << entries_[i].nbytes
                                                   << " bytes written at finish()");
    }
    int err = 0;
    if (std::fflush(file_) != 0 || ::fsync(fileno(file_)) != 0) err = errno;
    if (std::fclose(file_) != 0 && err == 0) err = errno;
    file_ = nullptr;
    if (err == 0 && std::rename(tmp_path_.c_str(), path_.c_str()) != 0) err = errno;
    if (err != 0) {
        failed_ = true;
        std::remove(tmp_path_.c_str());
        ECF8_FAIL(file_ctx(path_) << ": cannot complete the write of '" << tmp_path_ << "': " << errno_text(err));
    }
    finished_ = true;
    fsync_dir(std::filesystem::path(path_).parent_path().string());  // make the rename durable
}

void write_safetensors(const std::string& path, const std::map<std::string, std::string>& metadata,
                       const std::vector<TensorView>& tensors) {
    SafetensorsWriter writer(path);
    writer.set_metadata(metadata);
    for (const TensorView& t : tensors) writer.add_tensor(t.name, t.dtype, t.shape, t.nbytes);
    writer.write_header();
    for (const TensorView& t : tensors) writer.write_data(t.name, t.data, t.nbytes);
    writer.finish();
}

// ---------------------------------------------------------------------------------------------------------------
// SafetensorsCheckpoint

namespace {

json read_json_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    ECF8_CHECK(in, "cannot open '" << path << "': " << errno_text(errno));
    std::stringstream ss;
    ss << in.rdbuf();
    try {
        return json::parse(ss.str());
    } catch (const json::exception& e) {
        ECF8_FAIL("'" << path << "' is not valid JSON: " << e.what());
    }
}

// weight_map of an index file: tensor name -> shard file name (a plain name inside the directory).
std::map<std::string, std::string> read_weight_map(const std::string& index_path) {
    json index = read_json_file(index_path);
    ECF8_CHECK(index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(),
               "'" << index_path << "': missing 'weight_map' object");
    std::map<std::string, std::string> out;
    for (const auto& [name, file] : index["weight_map"].items()) {
        ECF8_CHECK(file.is_string(),
                   "'" << index_path << "': weight_map entry of tensor '" << name << "' must be a file name string");
        std::string f = file.get<std::string>();
        ECF8_CHECK(!f.empty() && f.find('/') == std::string::npos && f != "." && f != "..",
                   "'" << index_path << "': tensor '" << name << "' maps to invalid file name '" << f << "'");
        out.emplace(name, std::move(f));
    }
    return out;
}

}  // namespace

SafetensorsCheckpoint SafetensorsCheckpoint::open(const std::string& dir) {
    std::error_code ec;
    ECF8_CHECK(std::filesystem::is_directory(dir, ec), "checkpoint '" << dir << "' is not a directory");
    SafetensorsCheckpoint ckpt;
    ckpt.dir_ = dir;
    std::string index_path = (std::filesystem::path(dir) / kIndexFile).string();
    if (std::filesystem::exists(index_path, ec)) {
        ckpt.open_indexed(index_path);
    } else {
        ckpt.open_all();
    }
    return ckpt;
}

void SafetensorsCheckpoint::open_indexed(const std::string& index_path) {
    std::map<std::string, std::string> weight_map = read_weight_map(index_path);
    std::map<std::string, size_t> file_ids;
    for (const auto& [name, file] : weight_map) {
        if (file_ids.count(file)) continue;
        file_ids.emplace(file, files_.size());
        files_.push_back(SafetensorsFile::open((std::filesystem::path(dir_) / file).string()));
    }
    for (const auto& [name, file] : weight_map) {
        size_t id = file_ids.at(file);
        const TensorInfo* t = files_[id].find(name);
        ECF8_CHECK(t != nullptr, "checkpoint '" << dir_ << "': tensor '" << name << "' listed in " << kIndexFile
                                                << " is missing from '" << files_[id].path() << "'");
        entries_.emplace(name, Entry{id, t});
    }
}

void SafetensorsCheckpoint::open_all() {
    std::vector<std::string> paths;
    std::error_code ec;
    for (const auto& de : std::filesystem::directory_iterator(dir_, ec)) {
        if (de.path().extension() == ".safetensors") paths.push_back(de.path().string());
    }
    ECF8_CHECK(!ec, "checkpoint '" << dir_ << "': cannot list the directory: " << ec.message());
    ECF8_CHECK(!paths.empty(), "checkpoint '" << dir_ << "': no " << kIndexFile << " and no *.safetensors files");
    std::sort(paths.begin(), paths.end());
    for (const std::string& p : paths) files_.push_back(SafetensorsFile::open(p));
    for (size_t id = 0; id < files_.size(); ++id) {
        for (const TensorInfo& t : files_[id].tensors()) {
            auto [it, added] = entries_.emplace(t.name, Entry{id, &t});
            ECF8_CHECK(added, "checkpoint '" << dir_ << "': tensor '" << t.name << "' appears in both '"
                                             << files_[it->second.file].path() << "' and '" << files_[id].path()
                                             << "'");
        }
    }
}

std::vector<std::string> SafetensorsCheckpoint::tensor_names() const {
    std::vector<std::string> names;
    names.reserve(entries_.size());
    for (const auto& [name, e] : entries_) names.push_back(name);
    return names;
}

const SafetensorsCheckpoint::Entry& SafetensorsCheckpoint::entry(const std::string& name) const {
    auto it = entries_.find(name);
    ECF8_CHECK(it != entries_.end(), "checkpoint '" << dir_ << "': no tensor named '" << name << "'");
    return it->second;
}

const TensorInfo& SafetensorsCheckpoint::info(const std::string& name) const { return *entry(name).info; }

const uint8_t* SafetensorsCheckpoint::data(const std::string& name) const {
    const Entry& e = entry(name);
    return files_[e.file].tensor_data(*e.info);
}

const SafetensorsFile& SafetensorsCheckpoint::file_of(const std::string& name) const {
    return files_[entry(name).file];
}

}  // namespace ecf8
