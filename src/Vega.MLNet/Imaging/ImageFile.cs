using System.Buffers;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Vega.MLNet.Imaging;

/// <summary>
/// Safe reading of image files: only regular files (symbolic links are followed; a FIFO, a device, a socket or a
/// folder is refused with the reason and never read, so a link to <c>/dev/zero</c> cannot exhaust memory and a FIFO
/// cannot block), at most <see cref="DecodeOptions.MaxFileBytes"/> bytes (checked from the file's metadata before
/// anything is read), and the first bytes must be the signature of an image format before the rest is read (a large
/// file that is not an image costs one small read). On Linux the type is checked on the path and again on the opened
/// descriptor (opened non-blocking), so a file swapped for a FIFO between the two checks is caught too.
/// Failures are <see cref="ImageDecodeException"/>s naming the file and the reason.
/// </summary>
internal static partial class ImageFile
{
    /// <summary>Bytes read first to check the signature.</summary>
    internal const int HeaderBytes = 32;

    /// <summary>
    /// Reads the file at <paramref name="path"/> into a buffer rented from <see cref="ArrayPool{T}.Shared"/> (return
    /// it); <paramref name="length"/> is the number of bytes read.
    /// </summary>
    public static byte[] Read(string path, DecodeOptions options, out int length)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(options);
        if (path.Contains('\0')) throw new ImageDecodeException(path, "the path contains a NUL character");
        long max = options.MaxFileBytes;
        if (max < 1) throw new ArgumentOutOfRangeException(nameof(options), max, "DecodeOptions.MaxFileBytes must be at least 1.");
        using SafeFileHandle handle = Open(path, max);
        long size = RandomAccess.GetLength(handle);
        CheckSize(path, size, max);
        if (size == 0) throw new ImageDecodeException(path, "empty file");

        Span<byte> header = stackalloc byte[HeaderBytes];
        int got = ReadAt(handle, path, header[..(int)Math.Min(size, HeaderBytes)], 0);
        header = header[..got];
        if (got == 0) throw new ImageDecodeException(path, "empty file");
        if (!LooksLikeImage(header)) throw new ImageDecodeException(path, $"not an image ({Describe(header)})");

        byte[] buffer = ArrayPool<byte>.Shared.Rent((int)size);
        try
        {
            header.CopyTo(buffer);
            int read = got;
            while (read < size)
            {
                int n = ReadAt(handle, path, buffer.AsSpan(read, (int)size - read), read);
                if (n == 0) break; // the file shrank while reading: decode what is there
                read += n;
            }
            length = read;
            return buffer;
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
    }

    private static int ReadAt(SafeFileHandle handle, string path, Span<byte> destination, long offset)
    {
        try
        {
            return RandomAccess.Read(handle, destination, offset);
        }
        catch (IOException e)
        {
            throw new ImageDecodeException(path, $"read error ({e.Message})", e);
        }
    }

    private static void CheckSize(string path, long size, long max)
    {
        if (size > max)
            throw new ImageDecodeException(path, string.Create(CultureInfo.InvariantCulture,
                $"file too large ({size} bytes; the limit is {max} bytes, DecodeOptions.MaxFileBytes)"));
        if (size > Array.MaxLength)
            throw new ImageDecodeException(path, string.Create(CultureInfo.InvariantCulture, $"file too large ({size} bytes)"));
    }

    // ------------------------------------------------------------------ open with type checks

    private static SafeFileHandle Open(string path, long max)
    {
        if (OperatingSystem.IsLinux() && Statx.Available)
        {
            // 1. The path (links followed): refuse without opening anything that is not a regular file.
            if (Statx.OfPath(path, out var info, out int errno) != 0) throw new ImageDecodeException(path, ErrnoReason(path, errno));
            CheckType(path, info.Mode);
            CheckSize(path, info.Size, max);
            // 2. Open non-blocking (a FIFO swapped in meanwhile cannot block) and check what was actually opened.
            int fd = Statx.OpenReadOnlyNonBlocking(path, out errno);
            if (fd < 0) throw new ImageDecodeException(path, ErrnoReason(path, errno));
            var handle = new SafeFileHandle(fd, ownsHandle: true);
            try
            {
                if (Statx.OfDescriptor(fd, out info, out errno) != 0) throw new ImageDecodeException(path, ErrnoReason(path, errno));
                CheckType(path, info.Mode);
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

    /// <summary>Other systems: the checks .NET offers (folders refused, length before reading).</summary>
    private static SafeFileHandle OpenPortable(string path)
    {
        try
        {
            if (Directory.Exists(path)) throw new ImageDecodeException(path, "is a folder, not a file");
            return File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.SequentialScan);
        }
        catch (FileNotFoundException) { throw new ImageDecodeException(path, "file not found"); }
        catch (DirectoryNotFoundException) { throw new ImageDecodeException(path, "file not found (its folder does not exist)"); }
        catch (UnauthorizedAccessException e) { throw new ImageDecodeException(path, $"permission denied ({e.Message})", e); }
        catch (IOException e) { throw new ImageDecodeException(path, $"read error ({e.Message})", e); }
    }

    private const uint S_IFMT = 0xF000, S_IFREG = 0x8000, S_IFDIR = 0x4000, S_IFCHR = 0x2000, S_IFBLK = 0x6000, S_IFIFO = 0x1000, S_IFSOCK = 0xC000;

    private static void CheckType(string path, uint mode)
    {
        uint type = mode & S_IFMT;
        if (type == S_IFREG) return;
        if (type == S_IFDIR) throw new ImageDecodeException(path, "is a folder, not a file");
        string what = type switch
        {
            S_IFDIR => "is a folder",
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
        throw new ImageDecodeException(path, $"{what}{link}, not a regular file; only regular files are read");
    }

    private static string ErrnoReason(string path, int errno) => errno switch
    {
        2 => "file not found",                                               // ENOENT
        20 => "file not found (a folder on its path is a file)",             // ENOTDIR
        13 => "permission denied",                                           // EACCES
        1 => "permission denied",                                            // EPERM
        40 => "too many levels of symbolic links (a link loop?)",           // ELOOP
        36 => "the path is too long",                                        // ENAMETOOLONG
        21 => "is a folder, not a file",                                     // EISDIR
        _ => $"cannot open the file ({Marshal.GetPInvokeErrorMessage(errno)})",
    };

    // ------------------------------------------------------------------ signatures

    /// <summary>
    /// Whether <paramref name="b"/> (the first bytes of a file) starts like an image format: JPEG, PNG, GIF, WebP,
    /// BMP, TIFF, ICO/CUR, HEIF/AVIF (ISO media), JPEG 2000, JPEG XL, QOI, PSD or PNM. The decoder then decodes it or
    /// rejects it with a reason; anything else is refused before the rest of the file is read.
    /// </summary>
    internal static bool LooksLikeImage(ReadOnlySpan<byte> b)
    {
        if (b.Length >= 2 && b[0] == 0xFF && b[1] == 0xD8) return true;                              // JPEG (possibly truncated)
        if (b.StartsWith((ReadOnlySpan<byte>)[0x89, 0x50, 0x4E, 0x47])) return true;                  // PNG
        if (b.StartsWith("GIF8"u8)) return true;                                                       // GIF87a / GIF89a
        if (b.Length >= 12 && b.StartsWith("RIFF"u8) && b[8..12].SequenceEqual("WEBP"u8)) return true; // WebP
        if (b.StartsWith("BM"u8)) return true;                                                         // BMP
        if (b.StartsWith("II*\0"u8) || b.StartsWith("MM\0*"u8)) return true;                           // TIFF
        if (b.Length >= 4 && b[0] == 0 && b[1] == 0 && b[2] is 1 or 2 && b[3] == 0) return true;      // ICO / CUR
        if (b.Length >= 12 && b[4..8].SequenceEqual("ftyp"u8)) return true;                            // HEIF / AVIF (ISO media)
        if (b.StartsWith((ReadOnlySpan<byte>)[0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50, 0x20, 0x20])) return true; // JPEG 2000 (JP2)
        if (b.StartsWith((ReadOnlySpan<byte>)[0xFF, 0x4F, 0xFF, 0x51])) return true;                  // JPEG 2000 codestream
        if (b.StartsWith((ReadOnlySpan<byte>)[0xFF, 0x0A])) return true;                              // JPEG XL codestream
        if (b.StartsWith((ReadOnlySpan<byte>)[0x00, 0x00, 0x00, 0x0C, 0x4A, 0x58, 0x4C, 0x20])) return true; // JPEG XL container
        if (b.StartsWith("qoif"u8) || b.StartsWith("8BPS"u8)) return true;                             // QOI, PSD
        if (b.Length >= 3 && b[0] == (byte)'P' && b[1] is >= (byte)'1' and <= (byte)'7' && b[2] is (byte)'\n' or (byte)' ' or (byte)'\r' or (byte)'\t') return true; // PNM / PAM
        return false;
    }

    /// <summary>"starts with 'text'" or "starts with bytes xx xx …" for the first 8 bytes.</summary>
    internal static string Describe(ReadOnlySpan<byte> b)
    {
        var head = b[..Math.Min(8, b.Length)];
        bool text = true;
        foreach (byte c in head) text &= c is >= 0x20 and < 0x7F or (byte)'\t' or (byte)'\n' or (byte)'\r';
        if (text)
        {
            var s = Encoding.ASCII.GetString(head).Replace("\n", "\\n").Replace("\r", "\\r").Replace("\t", "\\t");
            return $"starts with '{s}'";
        }
        var sb = new StringBuilder("starts with bytes");
        foreach (byte c in head) sb.Append(' ').Append(c.ToString("x2", CultureInfo.InvariantCulture));
        return sb.ToString();
    }

    // ------------------------------------------------------------------ Linux: statx(2), open(2)

    /// <summary>glibc's <c>statx</c> (2.28+): one struct layout on every architecture.</summary>
    private static unsafe partial class Statx
    {
        private const int AT_FDCWD = -100, AT_EMPTY_PATH = 0x1000;
        private const uint STATX_TYPE = 0x1, STATX_MODE = 0x2, STATX_SIZE = 0x200;
        private const int O_RDONLY = 0, O_NOCTTY = 0x100, O_NONBLOCK = 0x800, O_CLOEXEC = 0x80000;

        public readonly record struct Info(uint Mode, long Size);

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

        public static int OfPath(string path, out Info info, out int errno) => Call(AT_FDCWD, path, 0, out info, out errno);

        public static int OfDescriptor(int fd, out Info info, out int errno) => Call(fd, "", AT_EMPTY_PATH, out info, out errno);

        public static int OpenReadOnlyNonBlocking(string path, out int errno)
        {
            int fd = OpenNative(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
            errno = fd < 0 ? Marshal.GetLastPInvokeError() : 0;
            return fd;
        }

        private static int Call(int dirfd, string path, int flags, out Info info, out int errno)
        {
            // struct statx is 256 bytes: stx_mode (u16) at offset 28, stx_size (u64) at offset 40.
            byte* buffer = stackalloc byte[256];
            int rc = StatxNative(dirfd, path, flags, STATX_TYPE | STATX_MODE | STATX_SIZE, buffer);
            if (rc != 0)
            {
                errno = Marshal.GetLastPInvokeError();
                info = default;
                return rc;
            }
            errno = 0;
            info = new Info(*(ushort*)(buffer + 28), *(long*)(buffer + 40));
            return 0;
        }
    }
}
