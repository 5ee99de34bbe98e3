// An independent check of an RFC 4998 evidence record with BouncyCastle's ERS classes
// (org.bouncycastle.tsp.ers, Debian's libbcpkix-java / libbcprov-java), compiled and run
// by tests/evidence/ers/test_bouncycastle.py.
//
//   java ErsCheck RECORD.ers DATA CA.pem AT_EPOCH_MILLIS
//
// Prints "OK ..." and exits 0 when BouncyCastle accepts the record for DATA, else prints
// "FAIL <reason>" and exits 2 (1 for bad arguments). AT is the verification time (the
// tests move the TSA's clock ahead of the real one). What it asks BouncyCastle:
//  1. parse the record: ERSEvidenceRecord checks that every ArchiveTimeStamp of each chain
//     covers the timeStamp of the one before it (timestamp renewal);
//  2. validatePresent(DATA): the first ArchiveTimeStamp of the last chain covers DATA
//     (with the hash of the earlier chains after a hash-tree renewal);
//  3. the same for every earlier chain, on the record cut after that chain;
//  4. every time-stamp token's signature, with its signing certificate valid at its
//     genTime (TimeStampToken.validate), and that certificate signed by CA.pem.
import java.io.FileInputStream;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.security.Security;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.Arrays;
import java.util.Collection;
import java.util.Date;

import org.bouncycastle.asn1.tsp.ArchiveTimeStamp;
import org.bouncycastle.asn1.tsp.ArchiveTimeStampChain;
import org.bouncycastle.asn1.tsp.ArchiveTimeStampSequence;
import org.bouncycastle.asn1.tsp.EvidenceRecord;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.cms.SignerInformationVerifier;
import org.bouncycastle.cms.jcajce.JcaSimpleSignerInfoVerifierBuilder;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.operator.DigestCalculatorProvider;
import org.bouncycastle.operator.jcajce.JcaContentVerifierProviderBuilder;
import org.bouncycastle.operator.jcajce.JcaDigestCalculatorProviderBuilder;
import org.bouncycastle.tsp.TimeStampToken;
import org.bouncycastle.tsp.ers.ERSByteData;
import org.bouncycastle.tsp.ers.ERSEvidenceRecord;

public class ErsCheck {
    public static void main(String[] args) {
        if (args.length != 4) {
            System.out.println("usage: ErsCheck RECORD.ers DATA CA.pem AT_EPOCH_MILLIS");
            System.exit(1);
        }
        try {
            Security.addProvider(new BouncyCastleProvider());
            byte[] record = Files.readAllBytes(Paths.get(args[0]));
            byte[] data = Files.readAllBytes(Paths.get(args[1]));
            X509Certificate ca;
            try (FileInputStream in = new FileInputStream(args[2])) {
                ca = (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
            }
            Date at = new Date(Long.parseLong(args[3]));
            DigestCalculatorProvider digests = new JcaDigestCalculatorProviderBuilder().build();
            ERSEvidenceRecord ers = new ERSEvidenceRecord(record, digests);
            ers.validatePresent(new ERSByteData(data), at);
            SignerInformationVerifier last = new JcaSimpleSignerInfoVerifierBuilder()
                .setProvider("BC").build(ers.getSigningCertificate());
            ers.validate(last);

            EvidenceRecord asn1 = ers.toASN1Structure();
            ArchiveTimeStampChain[] chains = asn1.getArchiveTimeStampSequence().getArchiveTimeStampChains();
            for (int k = 1; k < chains.length; k++) {
                EvidenceRecord cut = new EvidenceRecord(asn1.getDigestAlgorithms(), null, null,
                    new ArchiveTimeStampSequence(Arrays.copyOf(chains, k)));
                new ERSEvidenceRecord(cut, digests).validatePresent(new ERSByteData(data), at);
            }
            int stamps = 0;
            for (ArchiveTimeStampChain chain : chains) {
                for (ArchiveTimeStamp ats : chain.getArchiveTimestamps()) {
                    TimeStampToken token = new TimeStampToken(ats.getTimeStamp());
                    @SuppressWarnings("unchecked")
                    Collection<X509CertificateHolder> certs = token.getCertificates().getMatches(token.getSID());
                    if (certs.isEmpty()) {
                        throw new IllegalStateException("a token without its signing certificate");
                    }
                    X509CertificateHolder cert = certs.iterator().next();
                    token.validate(new JcaSimpleSignerInfoVerifierBuilder().setProvider("BC").build(cert));
                    if (!cert.isSignatureValid(new JcaContentVerifierProviderBuilder().setProvider("BC").build(ca))) {
                        throw new IllegalStateException("a TSA certificate not signed by the CA");
                    }
                    stamps++;
                }
            }
            System.out.println("OK " + chains.length + " chain(s), " + stamps + " archive timestamp(s)");
            System.exit(0);
        } catch (Exception e) {
            System.out.println("FAIL " + e.getClass().getSimpleName() + ": " + e.getMessage());
            System.exit(2);
        }
    }
}
