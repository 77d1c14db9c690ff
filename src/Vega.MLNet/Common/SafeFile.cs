using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Vega.MLNet.Common;

/// <summary>
/// Opens files that must be regular files (images, configuration, class lists): symbolic links are followed, but a
/// folder, FIFO, character or block device or socket is refused with the reason before it is opened, so a link to
/// <c>/dev/zero</c> cannot be read forever and a FIFO cannot block. On Linux the type is checked on the path and again
/// on the descriptor, which is opened non-blocking, so a file swapped for a FIFO between the two checks is caught too.
/// </summary>
internal static partial class SafeFile
{
    /// <summary>A file was refused; <see cref="Reason"/> says why, without the path (e.g. "is a named pipe (FIFO), …").</summary>
    internal sealed class RefusedException(string reason, Exception? inner = null) : IOException(reason, inner)
    {
        public string Reason { get; } = reason;
    }

    /// <summary>Opens <paramref name="path"/> for reading after checking that it is a regular file.</summary>
    public static SafeFileHandle OpenRegular(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (path.Contains('\0')) throw new RefusedException("the path contains a NUL character");
        if (OperatingSystem.IsLinux() && Statx.Available)
        {
            // 1. The path (links followed): refuse without opening anything that is not a regular file.
            if (Statx.OfPath(path, out uint mode, out int errno) != 0) throw new RefusedException(ErrnoReason(errno));
            CheckType(path, mode);
            // 2. Open non-blocking (a FIFO swapped in meanwhile cannot block) and check what was actually opened.
            int fd = Statx.OpenReadOnlyNonBlocking(path, out errno);
            if (fd < 0) throw new RefusedException(ErrnoReason(errno));
            var handle = new SafeFileHandle(fd, ownsHandle: true);
            try
            {
                if (Statx.OfDescriptor(fd, out mode, out errno) != 0) throw new RefusedException(ErrnoReason(errno));
                CheckType(path, mode);
                return handle;
            }
            catch
            {
                handle.Dispose();
                throw;
            }
        }
        return OpenPortable(path);
    }

    /// <summary>A read-only stream over a regular file (checked as <see cref="OpenRegular"/> does).</summary>
    public static FileStream OpenStream(string path) => new(OpenRegular(path), FileAccess.Read, 1 << 16);

    /// <summary>
    /// Reads <paramref name="path"/> as <paramref name="what"/> (e.g. "CSV manifest"): a refused file becomes an
    /// <see cref="InvalidDataException"/> naming the file and the reason.
    /// </summary>
    public static byte[] ReadAllBytesOrInvalid(string path, long maxBytes, string what)
    {
        try
        {
            return ReadAllBytes(path, maxBytes);
        }
        catch (RefusedException e)
        {
            throw new InvalidDataException($"The {what} '{path}' cannot be read: {e.Reason}.", e);
        }
    }

    /// <summary>Reads the whole of a regular file of at most <paramref name="maxBytes"/> bytes (checked before reading).</summary>
    public static byte[] ReadAllBytes(string path, long maxBytes)
    {
        using var handle = OpenRegular(path);
        long size = RandomAccess.GetLength(handle);
        if (size > maxBytes || size > Array.MaxLength)
            throw new RefusedException($"the file is too large ({size} bytes; the limit is {maxBytes})");
        var bytes = new byte[size];
        int read = 0;
        while (read < size)
        {
            int n = RandomAccess.Read(handle, bytes.AsSpan(read), read);
            if (n == 0) break;
            read += n;
        }
        return read == size ? bytes : bytes[..read];
    }

    /// <summary>
    /// A cheap identity of a file's current content for caches keyed by metadata: device, inode, size, modification
    /// and status-change times in nanoseconds (the change time cannot be set back by tools such as touch, so a file
    /// rewritten in place gets a new stamp). Elsewhere: full path, size and modification time. Null when unavailable.
    /// </summary>
    public static string? Stamp(string path)
    {
        try
        {
            if (OperatingSystem.IsLinux() && Statx.Available)
                return Statx.Stamp(path);
            var info = new FileInfo(path);
            return info.Exists ? $"{info.FullName}|{info.Length}|{info.LastWriteTimeUtc.Ticks}" : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Other systems: the checks .NET offers (folders refused).</summary>
    private static SafeFileHandle OpenPortable(string path)
    {
        try
        {
            if (Directory.Exists(path)) throw new RefusedException("is a folder, not a file");
            return File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.SequentialScan);
        }
        catch (FileNotFoundException e) { throw new RefusedException("file not found", e); }
        catch (DirectoryNotFoundException e) { throw new RefusedException("file not found (its folder does not exist)", e); }
        catch (UnauthorizedAccessException e) { throw new RefusedException($"permission denied ({e.Message})", e); }
        catch (IOException e) when (e is not RefusedException) { throw new RefusedException($"read error ({e.Message})", e); }
    }

    private const uint S_IFMT = 0xF000, S_IFREG = 0x8000, S_IFDIR = 0x4000, S_IFCHR = 0x2000, S_IFBLK = 0x6000, S_IFIFO = 0x1000, S_IFSOCK = 0xC000;

    private static void CheckType(string path, uint mode)
    {
        uint type = mode & S_IFMT;
        if (type == S_IFREG) return;
        if (type == S_IFDIR) throw new RefusedException("is a folder, not a file");
        string what = type switch
        {
            S_IFCHR => "is a character device (such as /dev/zero)",
            S_IFBLK => "is a block device",
            S_IFIFO => "is a named pipe (FIFO)",
            S_IFSOCK => "is a socket",
            _ => $"is a special file (type 0x{type:x})",
        };
        string link = "";
        try
        {
            if (new FileInfo(path).LinkTarget is { } target) link = $" (through the symbolic link to '{target}')";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* the reason stands without it */ }
        throw new RefusedException($"{what}{link}, not a regular file; only regular files are read");
    }

    private static string ErrnoReason(int errno) => errno switch
    {
        2 => "file not found",                                      // ENOENT
        20 => "file not found (a folder on its path is a file)",    // ENOTDIR
        13 or 1 => "permission denied",                             // EACCES, EPERM
        40 => "too many levels of symbolic links (a link loop?)",  // ELOOP
        36 => "the path is too long",                               // ENAMETOOLONG
        21 => "is a folder, not a file",                            // EISDIR
        _ => $"cannot open the file ({Marshal.GetPInvokeErrorMessage(errno)})",
    };

    // ------------------------------------------------------------------ Linux: statx(2), open(2)

    /// <summary>glibc's <c>statx</c> (2.28+): one struct layout on every architecture.</summary>
    private static unsafe partial class Statx
    {
        private const int AT_FDCWD = -100, AT_EMPTY_PATH = 0x1000;
        private const uint STATX_TYPE = 0x1, STATX_MODE = 0x2;
        private const int O_RDONLY = 0, O_NOCTTY = 0x100, O_NONBLOCK = 0x800, O_CLOEXEC = 0x80000;

                private static readonly Lazy<bool> _available = new(() =>
        {
            try
            {
                return NativeLibrary.TryLoad("libc.so.6", out IntPtr libc) && NativeLibrary.TryGetExport(libc, "statx", out _);
            }
            catch (Exception e) when (e is DllNotFoundException or BadImageFormatException) { return false; }
        });

        public static bool Available => _available.Value;

        [LibraryImport("libc.so.6", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        private static partial int StatxNative(int dirfd, string path, int flags, uint mask, byte* buffer);

        [LibraryImport("libc.so.6", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        private static partial int OpenNative(string path, int flags);

        public static int OfPath(string path, out uint mode, out int errno) => Call(AT_FDCWD, path, 0, out mode, out errno);

        public static int OfDescriptor(int fd, out uint mode, out int errno) => Call(fd, "", AT_EMPTY_PATH, out mode, out errno);

        public static int OpenReadOnlyNonBlocking(string path, out int errno)
        {
            int fd = OpenNative(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
            errno = fd < 0 ? Marshal.GetLastPInvokeError() : 0;
            return fd;
        }

        private const uint STATX_INO = 0x100, STATX_SIZE = 0x200, STATX_MTIME = 0x40, STATX_CTIME = 0x80;

        /// <summary>dev:ino:size:mtime:ctime of <paramref name="path"/> (links followed), or null.</summary>
        public static string? Stamp(string path)
        {
            byte* b = stackalloc byte[256];
            if (StatxNative(AT_FDCWD, path, 0, STATX_TYPE | STATX_INO | STATX_SIZE | STATX_MTIME | STATX_CTIME, b) != 0) return null;
            // stx_ino @32, stx_size @40, stx_ctime @96 (s, ns), stx_mtime @112 (s, ns), stx_dev_major @136, stx_dev_minor @140.
            return string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"{*(uint*)(b + 136)}:{*(uint*)(b + 140)}:{*(ulong*)(b + 32)}:{*(ulong*)(b + 40)}:{*(long*)(b + 112)}.{*(uint*)(b + 120):D9}:{*(long*)(b + 96)}.{*(uint*)(b + 104):D9}");
        }

        private static int Call(int dirfd, string path, int flags, out uint mode, out int errno)
        {
            // struct statx is 256 bytes on every architecture; stx_mode (u16) is at offset 28.
            byte* buffer = stackalloc byte[256];
            int rc = StatxNative(dirfd, path, flags, STATX_TYPE | STATX_MODE, buffer);
            if (rc != 0)
            {
                errno = Marshal.GetLastPInvokeError();
                mode = 0;
                return rc;
            }
            errno = 0;
            mode = *(ushort*)(buffer + 28);
            return 0;
        }
    }
}
