// Safetensors container: a validating zero-copy reader, a streaming writer that publishes atomically
// (tmp file + rename), and Hugging Face checkpoint directories made of one or more safetensors files.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "codec/dtype.h"
#include "codec/mapped_file.h"

namespace ecf8 {

// One tensor of a safetensors header. begin/end are byte offsets relative to the data section.
struct TensorInfo {
    std::string name;
    DType dtype = DType::U8;
    std::vector<int64_t> shape;
    uint64_t begin = 0, end = 0;

    uint64_t nbytes() const { return end - begin; }
    uint64_t numel() const;  // product of the shape; 1 for a scalar (shape [])
};

// ---------------------------------------------------------------------------------------------------------------
// Reader

class SafetensorsFile {
public:
    // Maps `path` and parses and validates its header; throws ecf8::Error naming the file (and tensor).
    static SafetensorsFile open(const std::string& path);
    // Parses an in-memory file image. The result points into `bytes`: the caller keeps that buffer alive and
    // unchanged for as long as the returned object is used. `label` names the input in error messages.
    static SafetensorsFile parse(std::span<const uint8_t> bytes, const std::string& label);

    const std::vector<TensorInfo>& tensors() const { return tensors_; }  // sorted by begin offset
    const TensorInfo* find(const std::string& name) const;               // nullptr when absent
    const TensorInfo& get(const std::string& name) const;                // throws when absent
    const uint8_t* tensor_data(const TensorInfo& info) const;            // info.nbytes() bytes
    // Drops the tensor's pages from this process's memory (see MappedFile::release); data stays readable.
    void release(const TensorInfo& info) const { map_.release(tensor_data(info), info.nbytes()); }
    const std::map<std::string, std::string>& metadata() const { return metadata_; }  // "__metadata__"
    const std::string& path() const { return path_; }
    uint64_t file_size() const { return file_size_; }
    uint64_t data_offset() const { return data_offset_; }  // absolute file offset of the data section

private:
    SafetensorsFile() = default;

    std::string path_;
    MappedFile map_;  // empty for parse()
    const uint8_t* data_ = nullptr;
    uint64_t file_size_ = 0;
    uint64_t data_offset_ = 0;
    uint64_t data_size_ = 0;
    std::vector<TensorInfo> tensors_;
    std::unordered_map<std::string, size_t> index_;
    std::map<std::string, std::string> metadata_;
};

// ---------------------------------------------------------------------------------------------------------------
// Writer

// Streams a safetensors file to `path + ".tmp"` and renames it to `path` in finish(). Usage: set_metadata,
// add_tensor for every tensor in data order, write_header, write_data (any number of pieces per tensor, in
// declaration order), finish. Destroying an unfinished writer removes the tmp file.
class SafetensorsWriter {
public:
    explicit SafetensorsWriter(std::string path);
    ~SafetensorsWriter();
    SafetensorsWriter(const SafetensorsWriter&) = delete;
    SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

    void set_metadata(std::map<std::string, std::string> metadata);
    // nbytes must equal numel * dtype_size (a blob stored as U8 with shape [nbytes] satisfies it).
    void add_tensor(const std::string& name, DType dtype, std::vector<int64_t> shape, uint64_t nbytes);
    void write_header();
    void write_data(const std::string& name, const void* data, uint64_t nbytes);
    void finish();  // checks all data written, flushes, fsyncs, renames; writes the header if not yet done

    const std::string& path() const { return path_; }

private:
    struct Entry {
        std::string name;
        DType dtype;
        std::vector<int64_t> shape;
        uint64_t nbytes;
    };
    void write_bytes(const void* data, size_t n);
    void check_open(const char* what) const;
    std::string build_header() const;

    std::string path_;
    std::string tmp_path_;
    std::map<std::string, std::string> metadata_;
    std::vector<Entry> entries_;
    std::map<std::string, size_t> positions_;  // name -> index in entries_
    std::unique_ptr<char[]> buffer_;
    std::FILE* file_ = nullptr;
    bool header_written_ = false;
    bool finished_ = false;
    bool failed_ = false;   // an I/O error happened; the tmp file is gone or will be removed
    size_t current_ = 0;    // index of the tensor being written
    uint64_t written_ = 0;  // bytes of entries_[current_] written so far
};

// A tensor to write in one call.
struct TensorView {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    const void* data;
    uint64_t nbytes;
};

void write_safetensors(const std::string& path, const std::map<std::string, std::string>& metadata,
                       const std::vector<TensorView>& tensors);

// ---------------------------------------------------------------------------------------------------------------
// Checkpoint directory

// A Hugging Face checkpoint directory: the files named by model.safetensors.index.json, or else every
// *.safetensors file in the directory.
class SafetensorsCheckpoint {
public:
    static SafetensorsCheckpoint open(const std::string& dir);
    SafetensorsCheckpoint(SafetensorsCheckpoint&&) = default;
    SafetensorsCheckpoint& operator=(SafetensorsCheckpoint&&) = default;
    SafetensorsCheckpoint(const SafetensorsCheckpoint&) = delete;
    SafetensorsCheckpoint& operator=(const SafetensorsCheckpoint&) = delete;

    std::vector<std::string> tensor_names() const;  // sorted
    bool has(const std::string& name) const { return entries_.count(name) != 0; }
    const TensorInfo& info(const std::string& name) const;
    const uint8_t* data(const std::string& name) const;
    const SafetensorsFile& file_of(const std::string& name) const;
    void release(const std::string& name) const { file_of(name).release(info(name)); }
    size_t num_files() const { return files_.size(); }
    const std::string& dir() const { return dir_; }

private:
    struct Entry {
        size_t file;
        const TensorInfo* info;
    };
    SafetensorsCheckpoint() = default;
    const Entry& entry(const std::string& name) const;
    void open_indexed(const std::string& index_path);
    void open_all();

    std::string dir_;
    std::vector<SafetensorsFile> files_;
    std::map<std::string, Entry> entries_;
};

}  // namespace ecf8
