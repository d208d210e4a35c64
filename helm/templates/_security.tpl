{{/* The efs.csi.aws.com/cluster tag's value (--cluster-id), unique to the cluster: the
     controller.clusterId value; else the one the installed controller already uses (kept
     across upgrades); else the kube-system Namespace's UID (unique per cluster, no state to
     keep); else, where the chart is rendered without a cluster (helm template, GitOps
     tools), a value derived from the release's namespace and name: set controller.clusterId
     there, since every cluster rendering the same release would share it. */}}
{{- define "efs-csi.clusterId" -}}
{{- $c := .Values.controller -}}
{{- $found := "" -}}
{{- if $c.clusterId -}}
{{- $found = $c.clusterId -}}
{{- else -}}
{{- $deployment := lookup "apps/v1" "Deployment" .Release.Namespace $c.name -}}
{{- range (dig "spec" "template" "spec" "containers" list $deployment) -}}
{{- if eq .name "efs-plugin" -}}
{{- range (concat (.command | default list) (.args | default list)) -}}
{{- if hasPrefix "--cluster-id=" . -}}
{{- $found = trimPrefix "--cluster-id=" . -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if not $found -}}
{{- $found = dig "metadata" "uid" "" (lookup "v1" "Namespace" "" "kube-system") -}}
{{- end -}}
{{- if not $found -}}
{{- $found = printf "efs-csi-%s" (printf "%s/%s" .Release.Namespace .Release.Name | sha256sum | trunc 16) -}}
{{- end -}}
{{- end -}}
{{- $found -}}
{{- end -}}

{{/* A projected ServiceAccount token, CA and namespace at the usual path, for the one
     volume a container that calls the API mounts (pods set automountServiceAccountToken:
     false, so the sidecars that never call it get no token). */}}
{{- define "efs-csi.apiAccessVolume" -}}
- name: kube-api-access
  projected:
    defaultMode: 0444
    sources:
      - serviceAccountToken:
          path: token
          expirationSeconds: 3607
      - configMap:
          name: kube-root-ca.crt
          items:
            - key: ca.crt
              path: ca.crt
      - downwardAPI:
          items:
            - path: namespace
              fieldRef:
                fieldPath: metadata.namespace
{{- end -}}

{{- define "efs-csi.apiAccessMount" -}}
- name: kube-api-access
  mountPath: /var/run/secrets/kubernetes.io/serviceaccount
  readOnly: true
{{- end -}}

{{/* A sidecar's securityContext: the values' own, with every capability dropped and the
     runtime's default seccomp profile unless the values say otherwise. */}}
{{- define "efs-csi.sidecarSecurityContext" -}}
{{- $context := deepCopy (default dict .) -}}
{{- if not (hasKey $context "capabilities") -}}
{{- $_ := set $context "capabilities" (dict "drop" (list "ALL")) -}}
{{- end -}}
{{- if not (hasKey $context "seccompProfile") -}}
{{- $_ := set $context "seccompProfile" (dict "type" "RuntimeDefault") -}}
{{- end -}}
{{- if not (hasKey $context "allowPrivilegeEscalation") -}}
{{- $_ := set $context "allowPrivilegeEscalation" false -}}
{{- end -}}
{{- toYaml $context -}}
{{- end -}}

{{/* --http-endpoint: the pod's own IP (the node's, for the host-network node pod), never
     every interface. */}}
{{- define "efs-csi.metricsEndpoint" -}}
--http-endpoint=$(POD_IP):{{ . | int64 }}
{{- end -}}

{{- define "efs-csi.podIpEnv" -}}
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
{{- end -}}

{{/* The node's startup taint (efs_csi.contract.NOT_READY_TAINT). */}}
{{- define "efs-csi.notReadyTaint" -}}
efs.csi.aws.com/agent-not-ready
{{- end -}}
