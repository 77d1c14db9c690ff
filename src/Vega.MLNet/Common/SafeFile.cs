using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;

namespace Vega.MLNet.Common;

/// <summary>
/// Opens files that must be regular files (images, configuration, class lists): symbolic links are followed, but a
/// folder, FIFO, character or block device or socket is refused with the reason before it is opened, so a link to
/// <c>/dev/zero</c> cannot be read forever and a FIFO cannot block. On Linux the type is checked on the path and again
/// on the descriptor, which is opened non-blocking, so a file swapped for a FIFO between the two checks is caught too.
/// </summary>
internal static class SafeFile
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

    // ------------------------------------------------------------------ Linux: statx(2), open(2) through Tmds.LibC

    /// <summary>
    /// glibc's <c>statx</c> (2.28+) and <c>open</c>, bound by the Tmds.LibC package (typed structs and constants; this
    /// library declares no P/Invoke of its own). Only touched on Linux: the package ships implementations for linux-x64,
    /// linux-arm and linux-arm64, and anywhere it cannot bind, <see cref="Available"/> is false and the portable checks
    /// run instead.
    /// </summary>
    private static unsafe class Statx
    {
        private static readonly Lazy<bool> _available = new(Probe);

        public static bool Available => _available.Value;

        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
        private static bool Probe()
        {
            try
            {
                return OfPath("/", out _, out _) == 0;
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or FileNotFoundException or FileLoadException
                or TypeLoadException or BadImageFormatException or PlatformNotSupportedException)
            {
                return false;
            }
        }

        public static int OfPath(string path, out uint mode, out int errno) => Call(LibC.AT_FDCWD, path, 0, out mode, out errno);

        public static int OfDescriptor(int fd, out uint mode, out int errno) => Call(fd, "", LibC.AT_EMPTY_PATH, out mode, out errno);

        public static int OpenReadOnlyNonBlocking(string path, out int errno)
        {
            var utf8 = Utf8(path);
            int fd;
            fixed (byte* p = utf8) fd = LibC.open(p, LibC.O_RDONLY | LibC.O_NONBLOCK | LibC.O_CLOEXEC | LibC.O_NOCTTY, 0);
            errno = fd < 0 ? LibC.errno : 0;
            return fd;
        }

        /// <summary>dev:ino:size:mtime:ctime of <paramref name="path"/> (links followed), or null.</summary>
        public static string? Stamp(string path)
        {
            Tmds.Linux.statx st;
            var utf8 = Utf8(path);
            int rc;
            fixed (byte* p = utf8) rc = LibC.statx(LibC.AT_FDCWD, p, 0, LibC.STATX_TYPE | LibC.STATX_INO | LibC.STATX_SIZE | LibC.STATX_MTIME | LibC.STATX_CTIME, &st);
            if (rc != 0) return null;
            return string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"{st.stx_dev_major}:{st.stx_dev_minor}:{st.stx_ino}:{st.stx_size}:{st.stx_mtime.tv_sec}.{st.stx_mtime.tv_nsec:D9}:{st.stx_ctime.tv_sec}.{st.stx_ctime.tv_nsec:D9}");
        }

        private static int Call(int dirfd, string path, int flags, out uint mode, out int errno)
        {
            Tmds.Linux.statx st;
            var utf8 = Utf8(path);
            int rc;
            fixed (byte* p = utf8) rc = LibC.statx(dirfd, p, flags, LibC.STATX_TYPE | LibC.STATX_MODE, &st);
            if (rc != 0)
            {
                errno = LibC.errno;
                mode = 0;
                return rc;
            }
            errno = 0;
            mode = st.stx_mode;
            return 0;
        }

        /// <summary>The path as a NUL-terminated UTF-8 string.</summary>
        private static byte[] Utf8(string path)
        {
            var bytes = new byte[System.Text.Encoding.UTF8.GetByteCount(path) + 1];
            System.Text.Encoding.UTF8.GetBytes(path, bytes);
            return bytes;
        }
    }
}
