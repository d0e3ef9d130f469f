// Container reading and writing on top of the safetensors reader/writer and the blob codec.
#include "codec/container.h"

#include <xxhash.h>

#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/log.h"
#include "common/progress.h"
#include "common/thread_pool.h"

namespace ecf8 {

uint64_t xxh64_of(const void* data, uint64_t bytes) { return XXH64(data, bytes, 0); }

uint64_t TensorRecord::numel() const {
    uint64_t n = 1;
    for (int64_t d : shape) n *= static_cast<uint64_t>(d);
    return n;
}

std::string hex64(uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
    return buf;
}

std::string tensor_record_json(const TensorRecord& r) {
    nlohmann::json j;
    j["dtype"] = dtype_name(r.dtype);
    j["shape"] = r.shape;
    j["encoding"] = r.ecf8 ? "ecf8" : "raw";
    j["xxh64"] = hex64(r.xxh64);
    j["stored_xxh64"] = hex64(r.stored_xxh64);
    return j.dump();
}

uint64_t parse_hex64(const nlohmann::json& j, const char* key, const std::string& where) {
    ECF8_CHECK(j.contains(key) && j[key].is_string() && j[key].get<std::string>().size() == 16,
               where << ": field '" << key << "' must be a 16-digit hex string");
    const std::string s = j[key].get<std::string>();
    ECF8_CHECK(s.find_first_not_of("0123456789abcdef") == std::string::npos,
               where << ": field '" << key << "' is not hex");
    return std::stoull(s, nullptr, 16);
}

TensorRecord parse_tensor_record(const std::string& name, const std::string& text, const std::string& file) {
    const std::string where = file + ": tensor '" + name + "' ECF8 record";
    nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    ECF8_CHECK(j.is_object(), where << " is not a JSON object");
    TensorRecord r;
    r.name = name;
    ECF8_CHECK(j.contains("dtype") && j["dtype"].is_string(), where << ": missing dtype");
    ECF8_CHECK(parse_dtype(j["dtype"].get<std::string>(), &r.dtype), where << ": unknown dtype " << j["dtype"]);
    ECF8_CHECK(j.contains("shape") && j["shape"].is_array(), where << ": missing shape");
    uint64_t numel = 1;
    for (const auto& d : j["shape"]) {
        ECF8_CHECK(d.is_number_integer() && d.get<int64_t>() >= 0, where << ": bad shape " << j["shape"]);
        uint64_t dim = d.get<uint64_t>();
        ECF8_CHECK(dim == 0 || numel <= (uint64_t{1} << 60) / dim, where << ": shape too large");
        numel *= dim;
        r.shape.push_back(d.get<int64_t>());
    }
    ECF8_CHECK(j.contains("encoding") && j["encoding"].is_string(), where << ": missing encoding");
    const std::string enc = j["encoding"].get<std::string>();
    ECF8_CHECK(enc == "ecf8" || enc == "raw", where << ": encoding '" << enc << "' is not ecf8 or raw");
    r.ecf8 = enc == "ecf8";
    r.xxh64 = parse_hex64(j, "xxh64", where);
    r.stored_xxh64 = parse_hex64(j, "stored_xxh64", where);
    return r;
}

bool CompressedFile::is_compressed(const SafetensorsFile& file) {
    auto it = file.metadata().find(kContainerFormatKey);
    return it != file.metadata().end();
}

CompressedFile CompressedFile::open(const std::string& path) {
    CompressedFile cf(SafetensorsFile::open(path));
    const auto& meta = cf.file_.metadata();
    auto fmt = meta.find(kContainerFormatKey);
    ECF8_CHECK(fmt != meta.end(), path << ": not an ECF8 file (no '" << kContainerFormatKey << "' metadata)");
    ECF8_CHECK(fmt->second == kContainerFormatValue,
               path << ": ECF8 container version " << fmt->second << ", this build reads " << kContainerFormatValue);
    for (const TensorInfo& info : cf.file_.tensors()) {
        auto it = meta.find(kTensorKeyPrefix + info.name);
        ECF8_CHECK(it != meta.end(), path << ": tensor '" << info.name << "' has no ECF8 record");
        TensorRecord r = parse_tensor_record(info.name, it->second, path);
        if (r.ecf8) {
            ECF8_CHECK(info.dtype == DType::U8 && info.shape.size() == 1,
                       path << ": tensor '" << info.name << "' is marked ECF8 but is not a 1-D U8 blob");
            // The record must agree with its blob's header before anyone sizes a buffer from it.
            BlobHeader h;
            ECF8_CHECK(info.nbytes() >= sizeof(h), path << ": tensor '" << info.name << "' blob is truncated");
            std::memcpy(&h, cf.file_.tensor_data(info), sizeof(h));
            ECF8_CHECK(h.numel == r.numel() && h.dtype == static_cast<uint8_t>(r.dtype),
                       path << ": tensor '" << info.name << "' record (" << dtype_name(r.dtype) << ", " << r.numel()
                            << " elements) disagrees with its blob header");
        } else {
            ECF8_CHECK(info.dtype == r.dtype && info.shape == r.shape,
                       path << ": tensor '" << info.name << "' does not match its record's dtype/shape");
        }
        cf.by_name_[r.name] = cf.records_.size();
        cf.records_.push_back(std::move(r));
    }
    size_t records = 0;
    for (const auto& [key, value] : meta) records += key.rfind(kTensorKeyPrefix, 0) == 0;
    ECF8_CHECK(records == cf.records_.size(),
               path << ": " << records << " ECF8 records but " << cf.records_.size() << " tensors (file truncated?)");
    return cf;
}

const TensorRecord* CompressedFile::find(const std::string& name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : &records_[it->second];
}

const TensorRecord& CompressedFile::record(const std::string& name) const {
    const TensorRecord* r = find(name);
    ECF8_CHECK(r, file_.path() << ": no tensor '" << name << "'");
    return *r;
}

std::map<std::string, std::string> CompressedFile::original_metadata() const {
    std::map<std::string, std::string> out;
    for (const auto& [key, value] : file_.metadata())
        if (key != kContainerFormatKey && key.rfind(kTensorKeyPrefix, 0) != 0) out[key] = value;
    return out;
}

PreparedTensor CompressedFile::prepare(const TensorRecord& r) const {
    check_stored(r, file_.tensor_data(file_.get(r.name)));
    return parse(r);
}

PreparedTensor CompressedFile::parse(const TensorRecord& r) const {
    const TensorInfo& info = file_.get(r.name);
    ECF8_CHECK(r.ecf8, file_.path() << ": tensor '" << r.name << "' is not ECF8-coded");
    // open() already checked that the blob header's dtype and numel match the record.
    return PreparedTensor::prepare({file_.tensor_data(info), info.nbytes()}, r.name);
}

void CompressedFile::check_stored(const TensorRecord& r, const uint8_t* bytes) const {
    ECF8_CHECK(xxh64_of(bytes, stored_bytes(r)) == r.stored_xxh64,
               file_.path() << ": tensor '" << r.name << "' is corrupt (stored checksum mismatch)");
}

void CompressedFile::decode(const TensorRecord& r, void* out, ThreadPool* pool) const {
    if (r.ecf8) {
        PreparedTensor t = prepare(r);
        decode_all(t, out, pool);
    } else {
        const TensorInfo& info = file_.get(r.name);
        std::memcpy(out, file_.tensor_data(info), info.nbytes());
    }
    ECF8_CHECK(xxh64_of(out, r.raw_bytes()) == r.xxh64,
               file_.path() << ": tensor '" << r.name << "' decodes to bytes that fail its checksum");
}

void compress_file(const std::string& in_path, const std::string& out_path, const CompressOptions& options) {
    options.encode.validate();
    SafetensorsFile in = SafetensorsFile::open(in_path);
    for (const auto& [key, value] : in.metadata())
        ECF8_CHECK(key != kContainerFormatKey && key.rfind(kTensorKeyPrefix, 0) != 0,
                   in_path << ": already holds ECF8 metadata ('" << key << "'); it is compressed already");
    ThreadPool pool(options.threads);
    std::vector<const TensorInfo*> order;  // blobs first: their sizes are multiples of 16, keeping alignment
    for (const TensorInfo& t : in.tensors())
        if (dtype_is_codable(t.dtype)) order.push_back(&t);
    for (const TensorInfo& t : in.tensors())
        if (!dtype_is_codable(t.dtype)) order.push_back(&t);

    uint64_t total = 0;
    for (const TensorInfo* t : order) total += t->nbytes();
    ProgressBar bar("compress", total);
    std::vector<std::vector<uint8_t>> blobs(order.size());
    std::map<std::string, std::string> meta = in.metadata();
    meta[kContainerFormatKey] = kContainerFormatValue;
    SafetensorsWriter writer(out_path);
    for (size_t i = 0; i < order.size(); ++i) {
        const TensorInfo& t = *order[i];
        const uint8_t* data = in.tensor_data(t);
        TensorRecord r{t.name, t.dtype, t.shape, dtype_is_codable(t.dtype), xxh64_of(data, t.nbytes()), 0};
        if (r.ecf8) {
            blobs[i] = encode_tensor(t.dtype, data, t.numel(), options.encode, &pool);
            r.stored_xxh64 = xxh64_of(blobs[i].data(), blobs[i].size());
            writer.add_tensor(t.name, DType::U8, {static_cast<int64_t>(blobs[i].size())}, blobs[i].size());
        } else {
            r.stored_xxh64 = r.xxh64;
            writer.add_tensor(t.name, t.dtype, t.shape, t.nbytes());
        }
        meta[kTensorKeyPrefix + t.name] = tensor_record_json(r);
        if (options.progress) bar.advance(t.nbytes());
    }
    writer.set_metadata(meta);
    writer.write_header();
    for (size_t i = 0; i < order.size(); ++i) {
        const TensorInfo& t = *order[i];
        if (dtype_is_codable(t.dtype))
            writer.write_data(t.name, blobs[i].data(), blobs[i].size());
        else
            writer.write_data(t.name, in.tensor_data(t), t.nbytes());
        std::vector<uint8_t>().swap(blobs[i]);
    }
    writer.finish();
    bar.finish();
}

void decompress_file(const std::string& in_path, const std::string& out_path, int threads, bool progress) {
    CompressedFile cf = CompressedFile::open(in_path);
    ThreadPool pool(threads);
    SafetensorsWriter writer(out_path);
    writer.set_metadata(cf.original_metadata());
    uint64_t total = 0;
    for (const TensorRecord& r : cf.records()) {
        writer.add_tensor(r.name, r.dtype, r.shape, r.raw_bytes());
        total += r.raw_bytes();
    }
    writer.write_header();
    ProgressBar bar("decompress", total);
    std::vector<uint8_t> buf;
    for (const TensorRecord& r : cf.records()) {
        try {
            buf.resize(r.raw_bytes());
        } catch (const std::bad_alloc&) {
            ECF8_FAIL(in_path << ": tensor '" << r.name << "' needs " << r.raw_bytes() << " bytes, more than is free");
        }
        cf.decode(r, buf.data(), &pool);
        writer.write_data(r.name, buf.data(), buf.size());
        if (progress) bar.advance(buf.size());
    }
    writer.finish();
    bar.finish();
}

std::vector<std::string> verify_files(const std::string& original, const std::string& compressed, int threads) {
    SafetensorsFile orig = SafetensorsFile::open(original);
    CompressedFile cf = CompressedFile::open(compressed);
    ThreadPool pool(threads);
    std::vector<std::string> problems;
    std::vector<uint8_t> buf;
    for (const TensorInfo& t : orig.tensors()) {
        const TensorRecord* r = cf.find(t.name);
        if (!r) {
            problems.push_back("tensor '" + t.name + "': missing from " + compressed);
            continue;
        }
        if (r->dtype != t.dtype || r->shape != t.shape) {
            problems.push_back("tensor '" + t.name + "': dtype or shape differs");
            continue;
        }
        buf.assign(r->raw_bytes(), 0);
        try {
            cf.decode(*r, buf.data(), &pool);
        } catch (const Error& e) {
            problems.push_back(std::string(e.what()));
            continue;
        }
        const uint8_t* want = orig.tensor_data(t);
        if (std::memcmp(buf.data(), want, buf.size()) != 0) {
            size_t i = 0;
            while (buf[i] == want[i]) ++i;
            problems.push_back("tensor '" + t.name + "': first differing byte at offset " + std::to_string(i));
        }
    }
    if (cf.records().size() != orig.tensors().size())
        problems.push_back(compressed + " holds " + std::to_string(cf.records().size()) + " tensors, " + original +
                           " holds " + std::to_string(orig.tensors().size()));
    return problems;
}

}  // namespace ecf8
